"""The charts use cases, as functions with keyword-only arguments: they load, check the pure rules in
``domain.access``, build the new documents and their events, and call the store. Routes only parse, call
these and serialise; the store only talks to MongoDB.

The read side turns stored grants and the identity projection into the access rule's plain data: whether
(and through what) a viewer reads a chart, everyone who can, the grants reaching a viewer. The read check
and "who can see this" both go through ``domain.access.grounds``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinishare_charts import events
from clinishare_charts.domain.access import (
    ChartRef, GrantRef, Rule, grounds, practitioner_offices, reaches, who_can_read,
)
from clinishare_charts.domain.stored import AccessDoc, ChartDoc, ExpiryDoc, GrantDoc, NoteDoc
from clinishare_charts.store import ChartStore, Verify, search_filter
from clinishare_shared.auth import Principal
from clinishare_shared.directory import Directory, patient_in_care, refused_recipients
from clinishare_shared.domain.access import Ground, Readable, Reader
from clinishare_shared.domain.sharing import SharingList
from clinishare_shared.etag import check_if_match, entity_tag, precondition_failed
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.pagination import PageQuery
from clinishare_shared.problems import Problem
from clinishare_shared.projection import IdentityProjection

# ---- reading -----------------------------------------------------------------------------------------


async def read_grounds(*, store: ChartStore, projection: IdentityProjection, chart: ChartDoc,
                       viewer_id: str, now: datetime) -> list[Ground]:
    """How a viewer other than the author reads the chart now (empty: they may not). The candidates are
    the grants the viewer's lookups (and their offices') list for this chart; ``grounds`` decides on them
    as loaded, with the viewer's offices and the author's sharing list now."""
    roles = await projection.roles_of(viewer_id)
    docs = await store.grants_reaching_chart(chart, viewer_id, practitioner_offices(roles))
    if not docs:
        return []
    return grounds(viewer_id, ChartRef.from_doc(chart), [GrantRef.from_doc(g) for g in docs], roles,
                   await projection.sharing_list(chart["author_id"]), now)


async def readable_chart(*, store: ChartStore, projection: IdentityProjection, chart_id: str,
                         viewer_id: str) -> Readable[ChartDoc]:
    """The chart with the grounds the viewer reads it through (none: it is theirs); 404 for a chart they
    may not read, exactly as for one that does not exist."""
    chart = await store.chart(chart_id)
    if chart is None:
        raise Problem(404, "chart not found")
    if chart["author_id"] == viewer_id:
        return Readable(chart, [])
    found = await read_grounds(store=store, projection=projection, chart=chart, viewer_id=viewer_id, now=now_ms())
    if not found:
        raise Problem(404, "chart not found")
    return Readable(chart, found)


async def own_chart(*, store: ChartStore, chart_id: str, author_id: str) -> ChartDoc:
    """A chart the caller wrote; for anyone else (readers included) it does not exist here."""
    chart = await store.chart(chart_id)
    if chart is None or chart["author_id"] != author_id:
        raise Problem(404, "chart not found")
    return chart


async def read_chart(*, store: ChartStore, access: Readable[ChartDoc],
                     reader: Principal) -> tuple[ChartDoc, list[NoteDoc]]:
    """The chart and its notes; a read by anyone but the author is accounted for (audit) in the same write
    as its access-log entry."""
    chart = access.item
    if not access.own:
        entry: AccessDoc = {"_id": new_id(), "chart_id": chart["_id"], "author_id": chart["author_id"],
                            "patient_id": chart["patient_id"], "accessor_id": reader.id,
                            "accessor_kind": reader.kind,
                            "grant_ids": list(dict.fromkeys(g.grant_id for g in access.grounds)), "at": now_ms()}
        await store.insert_access(entry, events.chart_accessed(entry))
    return chart, await store.notes_of(chart["_id"])


async def readers(*, store: ChartStore, projection: IdentityProjection, chart: ChartDoc,
                  now: datetime) -> dict[Reader, list[Ground]]:
    """Everyone but the author who can read the chart now, office memberships expanded now."""
    grants = [GrantRef.from_doc(g) for g in await store.grants_covering(chart)]
    rosters = await projection.office_rosters(o for g in grants for o in g.office_ids)
    return who_can_read(ChartRef.from_doc(chart), grants, rosters, await projection.sharing_list(chart["author_id"]),
                        now)


def reaching_now(*, projection: IdentityProjection, viewer_id: str, offices: dict[str, str],
                 now: datetime) -> Verify:
    """Of grants as loaded (naming the viewer or one of their offices), those active now whose recipient is
    still on the sharer's sharing list; each sharer's list is read once, those of a call's grants together
    (two queries whatever their number)."""
    lists: dict[str, SharingList] = {}

    async def reaching(grants: list[GrantDoc]) -> list[GrantRef]:
        active = [g for g in map(GrantRef.from_doc, grants) if g.active(now)]
        if missing := {g.owner_id for g in active} - lists.keys():
            lists.update(await projection.sharing_lists(missing))
        return [g for g in active if reaches(g, viewer_id, offices, lists[g.owner_id])]

    return reaching


async def grants_reaching_now(*, store: ChartStore, projection: IdentityProjection, viewer_id: str,
                              now: datetime) -> list[GrantRef]:
    """The active grants that reach the viewer now, each recipient still on its sharer's sharing list."""
    offices = await projection.roles_of(viewer_id)
    reaching = await store.grants_reaching(viewer_id, practitioner_offices(offices))
    return await reaching_now(projection=projection, viewer_id=viewer_id, offices=offices, now=now)(reaching)


async def shared_charts(*, store: ChartStore, projection: IdentityProjection, viewer_id: str, q: str | None,
                        page: PageQuery) -> list[ChartDoc]:
    """Charts Shared With You: a page (plus one, for the cursor) of what the grants reaching the viewer now
    cover. A search queries the charts every such grant covers, so it checks them all first; a page without
    one checks only the grants that may cover its charts (``ChartStore.shared_page``), by the same rule as
    ``grants_reaching_now``."""
    now = now_ms()
    if search_filter(q):
        grants = await grants_reaching_now(store=store, projection=projection, viewer_id=viewer_id, now=now)
        return await store.shared_charts(viewer_id, grants, q=q, page=page)
    offices = await projection.roles_of(viewer_id)
    verify = reaching_now(projection=projection, viewer_id=viewer_id, offices=offices, now=now)
    return await store.shared_page(viewer_id, practitioner_offices(offices), verify, page)


# ---- writing charts and notes ------------------------------------------------------------------------


def chart_etag(chart: ChartDoc) -> str:
    """Changes with every edit of the chart itself (title, body); notes do not change it."""
    return entity_tag(chart["_id"], chart["updated_at"].isoformat())


async def create_chart(*, store: ChartStore, directory: Directory, author_id: str, authorization: str,
                       patient_id: str, title: str, body: str) -> ChartDoc:
    """Identity answers only for patients in the caller's care team, and gives the name kept for search;
    if identity cannot answer the directory raises 503 rather than guessing."""
    patient = await directory.patient(patient_id, authorization=authorization)
    if patient is None:
        raise Problem(422, "patient_id is not a patient in your care", invalid_ids=[patient_id])
    return await stage_chart(store=store, author_id=author_id, patient_id=patient_id,
                             patient_name=patient.get("name"), title=title, body=body)


async def stage_chart(*, store: ChartStore, author_id: str, patient_id: str, patient_name: str | None, title: str,
                      body: str) -> ChartDoc:
    """Write a chart and its ``charts.chart.created`` event (the caller checked the patient)."""
    now = now_ms()
    chart: ChartDoc = {"_id": new_id(), "author_id": author_id, "patient_id": patient_id,
                       "patient_name": patient_name, "title": title, "body": body, "created_at": now,
                       "updated_at": now}
    await store.insert_chart(chart, events.chart_created(chart))
    return chart


async def update_chart(*, store: ChartStore, chart: ChartDoc, editor_id: str, changes: dict[str, Any],
                       if_match: str | None) -> ChartDoc:
    """The author edits; anyone else who can read it gets 403. With ``If-Match`` only the version that was
    matched is changed (a write in between makes this 412)."""
    if chart["author_id"] != editor_id:
        raise Problem(403, "only the chart's author edits it")
    check_if_match(if_match, chart_etag(chart))
    if not changes:
        return chart
    updated = await store.update_chart(chart["_id"], {**changes, "updated_at": now_ms()},
                                       events.chart_updated(chart, changes),
                                       unchanged_since=chart["updated_at"] if if_match else None)
    if updated is None:
        raise precondition_failed() if if_match else Problem(404, "chart not found")
    return updated


async def add_note(*, store: ChartStore, chart: ChartDoc, author_id: str, text: str) -> NoteDoc:
    note: NoteDoc = {"_id": new_id(), "chart_id": chart["_id"], "author_id": author_id, "text": text,
                     "created_at": now_ms()}
    await store.insert_note(note, events.note_added(note, chart_author_id=chart["author_id"]))
    return note


# ---- grants ------------------------------------------------------------------------------------------


async def create_grant(*, store: ChartStore, projection: IdentityProjection, directory: Directory, owner_id: str,
                       authorization: str, rule: Rule, chart_id: str | None, patient_id: str | None,
                       practitioner_ids: list[str], office_ids: list[str],
                       expires_at: datetime | None) -> GrantDoc:
    """Share charts (the whole request is validated before anything is written): the grant must be about
    the caller's own charts, and every recipient on their sharing list."""
    if owner_id in practitioner_ids:
        raise Problem(422, "you cannot share with yourself", invalid_ids=[owner_id])
    if rule == "chart":
        chart = await store.chart(chart_id or "")
        if chart is None or chart["author_id"] != owner_id:
            raise Problem(422, "chart_id is not one of your charts", invalid_ids=[chart_id])
        patient_id = chart["patient_id"]
    elif rule == "patient":
        pid = patient_id or ""
        if not (await store.has_charts_for(owner_id, pid)
                or await patient_in_care(projection, directory, patient_id=pid, practitioner_id=owner_id,
                                         authorization=authorization)):
            raise Problem(422, "patient_id is not a patient of yours", invalid_ids=[pid])
    refused = await refused_recipients(projection, directory, account_id=owner_id, authorization=authorization,
                                       practitioner_ids=practitioner_ids, office_ids=office_ids)
    if refused:
        raise Problem(422, "some recipients are not on your sharing list", invalid_ids=refused)
    return await stage_grant(store=store, owner_id=owner_id, rule=rule, chart_id=chart_id, patient_id=patient_id,
                             practitioner_ids=practitioner_ids, office_ids=office_ids, expires_at=expires_at)


async def stage_grant(*, store: ChartStore, owner_id: str, rule: Rule, chart_id: str | None,
                      patient_id: str | None, practitioner_ids: list[str], office_ids: list[str],
                      expires_at: datetime | None = None) -> GrantDoc:
    """Write a grant (consent attested by its owner) and its ``charts.share.granted`` event; the caller
    checked it. ``patient_id`` of a ``chart`` grant is the chart's patient (kept for the accounting of
    disclosures; ``covers`` looks only at ``chart_id`` for that rule)."""
    now = now_ms()
    grant: GrantDoc = {"_id": new_id(), "owner_id": owner_id, "rule": rule, "chart_id": chart_id,
                       "patient_id": patient_id, "practitioner_ids": practitioner_ids, "office_ids": office_ids,
                       "patient_consent": True, "consent_attested_by": owner_id, "consent_attested_at": now,
                       "created_at": now, "revoked_at": None, "expires_at": expires_at, "expired_at": None}
    await store.insert_grant(grant, events.share_granted(grant))
    return grant


async def revoke_grant(*, store: ChartStore, grant_id: str, owner_id: str) -> None:
    """Access ends at once. Revoking a revoked grant changes nothing and announces nothing; someone else's
    grant does not exist here."""
    grant = await store.grant(grant_id, owner_id=owner_id)
    if grant is None:
        raise Problem(404, "grant not found")
    await store.revoke_grant(grant, now_ms(), events.share_revoked(grant))


async def expire_due(*, store: ChartStore, now: datetime, batch: int = 100) -> int:
    """Announce grants past their ``expires_at``, each exactly once however many replicas sweep (the store
    claims each by a unique insert carrying ``charts.share.expired``). Returns how many this call claimed.
    Only a sweep that found them all and expired each tells the store it is done up to ``now``."""
    claimed = 0
    sweep = await store.due_grants(now, batch=batch)
    for grant in sweep.grants:
        claim: ExpiryDoc = {"_id": grant["_id"], "owner_id": grant["owner_id"], "at": now}
        claimed += await store.expire_grant(grant, claim, events.share_expired(grant))
    if sweep.complete:
        await store.expiries_swept(sweep)
    return claimed
