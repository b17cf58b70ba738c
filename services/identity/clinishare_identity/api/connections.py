"""Connections made by entering a Share PIN (throttled, every look-up logged without the PIN), and the
caller's sharing list."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.mongo import new_id
from clinishare_shared.pagination import Page, PageParams
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.throttle import Throttled
from clinishare_shared.ids import PathId
from clinishare_identity.api.deps import StoreDep
from clinishare_identity.domain.models import ConnectionCreate, ConnectionPublic, SharingEntry, SharingListPublic
from clinishare_identity.domain.pins import normalise_pin
from clinishare_identity.store import DuplicateKeyError, IdentityStore
from clinishare_identity.service import sharing_list_of

router = APIRouter(tags=["connections"])
log = structlog.get_logger("clinishare.identity.connections")


async def connections_public(store: IdentityStore, me: str, docs: list[dict[str, Any]]) -> list[ConnectionPublic]:
    accounts = await store.accounts_by_id([d["owner_id"] for d in docs] +
                                          [d["target_id"] for d in docs if d["target_kind"] == "practitioner"])
    offices = await store.offices_by_id(d["target_id"] for d in docs if d["target_kind"] == "office")
    out = []
    for d in docs:
        target = (accounts if d["target_kind"] == "practitioner" else offices).get(d["target_id"], {})
        out.append(ConnectionPublic(
            id=d["_id"], target_kind=d["target_kind"], target_id=d["target_id"], target_name=target.get("name", ""),
            owner_id=d["owner_id"], owner_name=accounts.get(d["owner_id"], {}).get("name", ""),
            direction="outgoing" if d["owner_id"] == me else "incoming", created_at=d["created_at"]))
    return out


@router.post("/v1/connections", status_code=201, response_model=ConnectionPublic,
             summary="Connect to a practitioner or an office by its Share PIN",
             responses={429: {"description": "too many failed PIN look-ups (Retry-After)"}})
async def create_connection(body: ConnectionCreate, principal: CurrentPractitioner, store: StoreDep) -> ConnectionPublic:
    me = principal.id
    try:
        attempt = await store.pin_throttle.begin(me)  # counted before the PIN is checked
    except Throttled as exc:
        log.warning("pin_lookup", account_id=me, outcome="throttled")
        raise exc.problem("too many failed PIN look-ups; try again later") from None
    pin = normalise_pin(body.pin)
    if pin is None:
        # cannot match any PIN, so it is not a guess worth counting: just bad input
        await attempt.discard()
        log.info("pin_lookup", account_id=me, outcome="malformed")
        raise Problem(422, "a Share PIN is 10 letters and digits, like 7QK4-M2XD-9T")
    holder = await store.pin_holder(pin)
    if holder is not None:
        await attempt.succeeded()
    if holder is None:
        log.info("pin_lookup", account_id=me, outcome="not_found")
        raise Problem(404, "no practitioner or office has this Share PIN")
    target_kind, target = holder
    log.info("pin_lookup", account_id=me, outcome="found", target_kind=target_kind, target_id=target["_id"])
    if (target_kind == "practitioner" and target["_id"] == me) or (target_kind == "office" and target["owner_id"] == me):
        raise Problem(422, "this is your own Share PIN")
    conn = {"_id": new_id(), "owner_id": me, "target_kind": target_kind, "target_id": target["_id"],
            "created_at": store.now(), "deleted_at": None}
    try:
        await store.insert_connection(conn)
    except DuplicateKeyError:
        raise Problem(409, "you are already connected to this Share PIN's holder") from None
    log.info("connection_created", connection_id=conn["_id"], owner_id=me, target_kind=target_kind)
    return (await connections_public(store, me, [conn]))[0]


@router.get("/v1/connections", response_model=Page[ConnectionPublic],
            summary="Connections I made, and those made to me or to an office I own")
async def list_connections(principal: CurrentPrincipal, store: StoreDep, page: PageParams) -> Page[ConnectionPublic]:
    owned = await store.office_ids_owned(principal.id)
    docs, cursor = page.page(await store.list_connections(principal.id, owned, page))
    return Page(items=await connections_public(store, principal.id, docs), next_cursor=cursor)


@router.delete("/v1/connections/{connection_id}", status_code=204, summary="Delete a connection (either side)")
async def delete_connection(connection_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> Response:
    conn = await store.connection(connection_id)
    if conn is None or not await _is_party(store, principal.id, conn):
        raise not_found("connection")
    if not await store.delete_connection(conn, principal.id):
        raise not_found("connection")
    log.info("connection_deleted", connection_id=connection_id, deleted_by=principal.id)
    return Response(status_code=204)


async def _is_party(store: IdentityStore, me: str, conn: dict[str, Any]) -> bool:
    if conn["owner_id"] == me:
        return True
    if conn["target_kind"] == "practitioner":
        return conn["target_id"] == me
    office = await store.office(conn["target_id"])
    return office is not None and office["owner_id"] == me


@router.get("/v1/sharing-list", response_model=SharingListPublic, tags=["sharing"],
            summary="Whom I may share with, and why")
async def get_sharing_list(principal: CurrentPractitioner, store: StoreDep) -> SharingListPublic:
    sl = await sharing_list_of(store=store, account_id=principal.id)
    accounts = await store.accounts_by_id(sl.practitioners)
    offices = await store.offices_by_id(sl.offices)
    people = [SharingEntry(id=i, name=accounts[i]["name"], via=via) for i, via in sl.practitioners.items() if i in accounts]
    places = [SharingEntry(id=i, name=offices[i]["name"], via=via) for i, via in sl.offices.items() if i in offices]
    return SharingListPublic(practitioners=sorted(people, key=lambda e: (e.name.lower(), e.id)),
                             offices=sorted(places, key=lambda e: (e.name.lower(), e.id)))
