"""The only module that talks to MongoDB: charts, notes, chart grants, the access log and expiry claims.

Charts, grants, notes and access-log entries carry their events (built by ``service``) in an ``_outbox``
written in the same single-document write as the change itself. Grants are never deleted: revoking sets ``revoked_at`` (pushing its
event in that update); an expiry is claimed by a unique insert into ``chart_expiries`` that carries the
event (so of several replicas sweeping at once exactly one claims a grant, on every engine), and the grant
then gets ``expired_at``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from clinishare_charts.domain.access import GrantRef
from clinishare_charts.domain.stored import AccessDoc, ChartDoc, ExpiryDoc, GrantDoc, NoteDoc
from clinishare_shared.events import Envelope
from clinishare_shared.outbox import (NO_OUTBOX, Kick, insert_once, no_kick, push_events, strip_outbox,
                                      with_events)
from clinishare_shared.pagination import PageQuery

CHARTS, NOTES, GRANTS, ACCESSES, EXPIRIES = "charts", "chart_notes", "chart_grants", "chart_accesses", "chart_expiries"


def search_filter(q: str | None) -> dict[str, Any]:
    """Case-insensitive substring of the title or the patient's name; the input is a literal, not a regex."""
    if not q or not q.strip():
        return {}
    pattern = {"$regex": re.escape(q.strip()), "$options": "i"}
    return {"$or": [{"title": pattern}, {"patient_name": pattern}]}


def grants_filter(grants: Iterable[GrantRef]) -> dict[str, Any] | None:
    """The charts the given (active) grants cover, as one query clause; None if they cover nothing.
    Mirrors ``access.covers``: a grant covers only charts its owner wrote."""
    chart_ids: dict[str, set[str]] = defaultdict(set)
    patients: dict[str, set[str]] = defaultdict(set)
    everything: set[str] = set()
    for g in grants:
        if g.revoked:
            continue
        if g.rule == "all":
            everything.add(g.owner_id)
        elif g.rule == "patient" and g.patient_id:
            patients[g.owner_id].add(g.patient_id)
        elif g.rule == "chart" and g.chart_id:
            chart_ids[g.owner_id].add(g.chart_id)
    clauses: list[dict[str, Any]] = []
    if everything:
        clauses.append({"author_id": {"$in": sorted(everything)}})
    for owner, pids in sorted(patients.items()):
        if owner not in everything:
            clauses.append({"author_id": owner, "patient_id": {"$in": sorted(pids)}})
    for owner, cids in sorted(chart_ids.items()):
        if owner not in everything:
            clauses.append({"author_id": owner, "_id": {"$in": sorted(cids)}})
    return {"$or": clauses} if clauses else None


def _and(*parts: dict[str, Any]) -> dict[str, Any]:
    parts = tuple(p for p in parts if p)
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": list(parts)}


class ChartStore:
    def __init__(self, db: Any, *, kick: Kick = no_kick) -> None:
        self.db = db
        self.charts = db[CHARTS]
        self.notes = db[NOTES]
        self.grants = db[GRANTS]
        self.accesses = db[ACCESSES]
        self.expiries = db[EXPIRIES]
        self._kick = kick  # wakes the outbox relay after a write that staged events

    outbox_collections = (CHARTS, GRANTS, NOTES, ACCESSES, EXPIRIES)

    async def ensure_indexes(self) -> None:
        await self.charts.create_index([("author_id", ASCENDING), ("_id", DESCENDING)], name="author_newest")
        await self.charts.create_index([("author_id", ASCENDING), ("patient_id", ASCENDING), ("_id", DESCENDING)],
                                       name="author_patient_newest")
        await self.notes.create_index([("chart_id", ASCENDING), ("_id", ASCENDING)], name="chart_notes")
        await self.grants.create_index([("practitioner_ids", ASCENDING), ("revoked_at", ASCENDING)],
                                       name="to_practitioner")
        await self.grants.create_index([("office_ids", ASCENDING), ("revoked_at", ASCENDING)], name="to_office")
        await self.grants.create_index([("owner_id", ASCENDING), ("revoked_at", ASCENDING), ("_id", DESCENDING)],
                                       name="owner_newest")
        await self.grants.create_index([("expires_at", ASCENDING)], name="expiry")
        await self.accesses.create_index([("chart_id", ASCENDING), ("_id", DESCENDING)], name="chart_newest")

    # ---- charts ------------------------------------------------------------------------------------

    async def insert_chart(self, chart: ChartDoc, *events: Envelope) -> None:
        await self.charts.insert_one(with_events(chart, *events))
        self._kick(CHARTS, chart["_id"])

    async def chart(self, chart_id: str) -> ChartDoc | None:
        return cast(ChartDoc | None, await self.charts.find_one({"_id": chart_id}, NO_OUTBOX))

    async def update_chart(self, chart_id: str, changes: dict[str, Any], *events: Envelope,
                           unchanged_since: datetime | None = None) -> ChartDoc | None:
        """Set ``changes`` and stage ``events`` in one write. None when the chart is gone, or
        (``unchanged_since``) was updated after that time."""
        query: dict[str, Any] = {"_id": chart_id}
        if unchanged_since is not None:
            query["updated_at"] = unchanged_since
        # no projection: FerretDB 1.24 refuses findAndModify's "fields"; the outbox is stripped here instead
        updated = strip_outbox(await self.charts.find_one_and_update(
            query, push_events({"$set": changes}, *events), return_document=ReturnDocument.AFTER))
        if updated is not None:
            self._kick(CHARTS, chart_id)
        return cast(ChartDoc | None, updated)

    async def has_charts_for(self, author_id: str, patient_id: str) -> bool:
        return await self.charts.find_one({"author_id": author_id, "patient_id": patient_id}, {"_id": 1}) is not None

    async def own_charts(self, author_id: str, *, q: str | None, page: PageQuery) -> list[ChartDoc]:
        query = _and({"author_id": author_id}, search_filter(q), page.id_filter())
        return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def shared_charts(self, viewer_id: str, grants: list[GrantRef], *, q: str | None,
                            page: PageQuery) -> list[ChartDoc]:
        """Charts covered by ``grants`` (active grants that reach the viewer, checked by the caller): one $or
        over charts whatever the number of charts or grants. A chart covered twice is still one document."""
        # the viewer's own charts are "Your Charts", even when a grant of theirs reaches them via an office
        covered = grants_filter(g for g in grants if g.owner_id != viewer_id)
        if covered is None:
            return []
        query = _and(covered, search_filter(q), page.id_filter())
        return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    # ---- notes -------------------------------------------------------------------------------------

    async def insert_note(self, note: NoteDoc, *events: Envelope) -> None:
        await self.notes.insert_one(with_events(note, *events))
        self._kick(NOTES, note["_id"])

    async def notes_of(self, chart_id: str) -> list[NoteDoc]:
        return await self.notes.find({"chart_id": chart_id}, NO_OUTBOX).sort("_id", ASCENDING).to_list()

    # ---- grants ------------------------------------------------------------------------------------

    async def grants_reaching(self, viewer_id: str, office_ids: list[str]) -> list[GrantDoc]:
        """Active grants naming the viewer directly or one of ``office_ids`` (the offices the viewer is a
        practitioner member of now)."""
        reach: list[dict[str, Any]] = [{"practitioner_ids": viewer_id}]
        if office_ids:
            reach.append({"office_ids": {"$in": office_ids}})
        query = {"$or": reach, "revoked_at": None, "expired_at": None}
        return await self.grants.find(query, NO_OUTBOX).to_list()

    async def grants_covering(self, chart: ChartDoc) -> list[GrantDoc]:
        """The author's unrevoked, unexpired-by-sweep grants that may cover this chart (``covers`` decides)."""
        about = [{"rule": "all"}, {"rule": "patient", "patient_id": chart["patient_id"]},
                 {"rule": "chart", "chart_id": chart["_id"]}]
        query = {"owner_id": chart["author_id"], "revoked_at": None, "expired_at": None, "$or": about}
        return await self.grants.find(query, NO_OUTBOX).sort("_id", ASCENDING).to_list()

    async def insert_grant(self, grant: GrantDoc, *events: Envelope) -> None:
        await self.grants.insert_one(with_events(grant, *events))
        self._kick(GRANTS, grant["_id"])

    async def grant(self, grant_id: str, *, owner_id: str) -> GrantDoc | None:
        return cast(GrantDoc | None, await self.grants.find_one({"_id": grant_id, "owner_id": owner_id}, NO_OUTBOX))

    async def own_grants(self, owner_id: str, *, include_revoked: bool, page: PageQuery) -> list[GrantDoc]:
        query: dict[str, Any] = {"owner_id": owner_id, **page.id_filter()}
        if not include_revoked:
            query["revoked_at"] = None
            query["expired_at"] = None
        return await self.grants.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def revoke_grant(self, grant: GrantDoc, at: datetime, *events: Envelope) -> bool:
        """Revoke an active grant, staging ``events`` in the same write. False if it was already revoked
        or expired (then nothing is staged)."""
        res = await self.grants.update_one(
            {"_id": grant["_id"], "owner_id": grant["owner_id"], "revoked_at": None, "expired_at": None},
            push_events({"$set": {"revoked_at": at}}, *events),
        )
        if res.modified_count:
            self._kick(GRANTS, grant["_id"])
        return bool(res.modified_count)

    async def due_grants(self, now: datetime, *, batch: int) -> list[GrantDoc]:
        """Grants past their ``expires_at`` and not yet marked expired (nor revoked)."""
        return await self.grants.find({"revoked_at": None, "expired_at": None, "expires_at": {"$lte": now}},
                                      NO_OUTBOX).limit(batch).to_list()

    async def expire_grant(self, claim: ExpiryDoc, *events: Envelope) -> bool:
        """Claim the announcement of a grant's expiry by a unique insert into ``chart_expiries`` carrying
        ``events`` (of several replicas only the winner's insert succeeds, on every engine), then mark the
        grant ``expired_at`` so it is no longer due. True if this call made the claim."""
        claimed = await insert_once(self.expiries, claim, *events)
        if claimed:
            self._kick(EXPIRIES, claim["_id"])
        await self.grants.update_one({"_id": claim["_id"], "expired_at": None}, {"$set": {"expired_at": claim["at"]}})
        return claimed

    # ---- the access log ----------------------------------------------------------------------------

    async def insert_access(self, entry: AccessDoc, *events: Envelope) -> None:
        await self.accesses.insert_one(with_events(entry, *events))
        self._kick(ACCESSES, entry["_id"])

    async def accesses_of(self, chart_id: str, page: PageQuery) -> list[AccessDoc]:
        query = {"chart_id": chart_id, **page.id_filter()}
        return await self.accesses.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()
