"""Connections made by entering a Share PIN (throttled, every look-up logged without the PIN), and the
caller's sharing list."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.ids import PathId
from clinishare_shared.pagination import Page, PageParams
from clinishare_identity import service
from clinishare_identity.api.deps import StoreDep
from clinishare_identity.domain.models import ConnectionCreate, ConnectionRead, SharingListRead

router = APIRouter(tags=["connections"])


@router.post("/v1/connections", status_code=201, response_model=ConnectionRead,
             summary="Connect to a practitioner or an office by its Share PIN",
             responses={429: {"description": "too many failed PIN look-ups (Retry-After)"}})
async def create_connection(body: ConnectionCreate, principal: CurrentPractitioner, store: StoreDep) -> ConnectionRead:
    conn = await service.connect(store=store, me=principal.id, raw_pin=body.pin)
    return ConnectionRead.from_doc(conn, me=principal.id,
                                   names=await service.connection_names(store=store, conns=[conn]))


@router.get("/v1/connections", response_model=Page[ConnectionRead],
            summary="Connections I made, and those made to me or to an office I own")
async def list_connections(principal: CurrentPrincipal, store: StoreDep, page: PageParams) -> Page[ConnectionRead]:
    conns, cursor = page.page(await service.connections_of(store=store, me=principal.id, page=page))
    names = await service.connection_names(store=store, conns=conns)
    return Page[ConnectionRead](items=[ConnectionRead.from_doc(c, me=principal.id, names=names) for c in conns], next_cursor=cursor)


@router.delete("/v1/connections/{connection_id}", status_code=204, summary="Delete a connection (either side)")
async def delete_connection(connection_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> Response:
    await service.delete_connection(store=store, me=principal.id, connection_id=connection_id)
    return Response(status_code=204)


@router.get("/v1/sharing-list", response_model=SharingListRead, tags=["sharing"],
            summary="Whom I may share with, and why")
async def get_sharing_list(principal: CurrentPractitioner, store: StoreDep) -> SharingListRead:
    sl = await service.sharing_list_of(store=store, account_id=principal.id)
    names = await service.names_of(store=store, account_ids=sl.practitioners, office_ids=sl.offices)
    return SharingListRead.of(practitioners=sl.practitioners, offices=sl.offices, names=names)
