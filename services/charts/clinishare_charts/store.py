"""The only module that talks to MongoDB: charts, notes and chart grants.

Charts, grants, notes and access-log entries carry their events in an ``_outbox`` written in the same
single-document write as the change itself. Grants are never deleted: revoking sets ``revoked_at`` (pushing its
event in that update); an expiry is claimed by a unique insert into ``chart_expiries`` that carries the
event (so of several replicas sweeping at once exactly one claims a grant, on every engine), and the grant
then gets ``expired_at``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from clinishare_charts import events
from clinishare_charts.domain.access import GrantRef
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.outbox import NO_OUTBOX, insert_once, push_events, strip_outbox, with_events
from clinishare_shared.pagination import PageQuery

CHARTS, NOTES, GRANTS, ACCESSES, EXPIRIES = "charts", "chart_notes", "chart_grants", "chart_accesses", "chart_expiries"


def _now() -> datetime:
    return datetime.now(UTC)


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
    def __init__(self, db: Any, *, on_write: Callable[[str | None, str | None], None] | None = None) -> None:
        self.db = db
        self.charts = db[CHARTS]
        self.notes = db[NOTES]
        self.grants = db[GRANTS]
        self.accesses = db[ACCESSES]
        self.expiries = db[EXPIRIES]
        self.on_write = on_write  # wakes the outbox relay after a write that staged events

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

    def _wrote(self, collection: str | None = None, doc_id: str | None = None) -> None:
        """Tell the outbox relay which document a write staged events in: its next pass reads just that
        (naming none asks for a full sweep)."""
        if self.on_write is not None:
            self.on_write(collection, doc_id)

    # ---- charts ------------------------------------------------------------------------------------

    async def create_chart(self, *, author_id: str, patient_id: str, patient_name: str | None, title: str,
                           body: str) -> dict[str, Any]:
        now = _now()
        doc = {"_id": new_id(), "author_id": author_id, "patient_id": patient_id, "patient_name": patient_name,
               "title": title, "body": body, "created_at": now, "updated_at": now}
        await self.charts.insert_one(with_events(doc, events.chart_created(doc)))
        self._wrote(CHARTS, doc["_id"])
        return doc

    async def chart(self, chart_id: str) -> dict[str, Any] | None:
        return await self.charts.find_one({"_id": chart_id}, NO_OUTBOX)

    async def update_chart(self, chart: dict[str, Any], changes: dict[str, Any], *,
                           unchanged_since: datetime | None = None) -> dict[str, Any] | None:
        """None when the chart is gone, or (``unchanged_since``) was updated after that time."""
        query: dict[str, Any] = {"_id": chart["_id"]}
        if unchanged_since is not None:
            query["updated_at"] = unchanged_since
        # no projection: FerretDB 1.24 refuses findAndModify's "fields"; the outbox is stripped here instead
        updated = strip_outbox(await self.charts.find_one_and_update(
            query,
            push_events({"$set": {**changes, "updated_at": _now()}}, events.chart_updated(chart, changes)),
            return_document=ReturnDocument.AFTER))
        if updated is not None:
            self._wrote(CHARTS, chart["_id"])
        return updated

    async def has_charts_for(self, author_id: str, patient_id: str) -> bool:
        return await self.charts.find_one({"author_id": author_id, "patient_id": patient_id}, {"_id": 1}) is not None

    async def own_charts(self, author_id: str, *, q: str | None, page: PageQuery) -> list[dict[str, Any]]:
        query = _and({"author_id": author_id}, search_filter(q), page.id_filter())
        return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def shared_charts(self, viewer_id: str, grants: list[GrantRef], *, q: str | None,
                            page: PageQuery) -> list[dict[str, Any]]:
        """Charts covered by ``grants`` (active grants that reach the viewer, checked by the caller): one $or
        over charts whatever the number of charts or grants. A chart covered twice is still one document."""
        # the viewer's own charts are "Your Charts", even when a grant of theirs reaches them via an office
        covered = grants_filter(g for g in grants if g.owner_id != viewer_id)
        if covered is None:
            return []
        query = _and(covered, search_filter(q), page.id_filter())
        return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    # ---- notes -------------------------------------------------------------------------------------

    async def add_note(self, *, chart: dict[str, Any], author_id: str, text: str) -> dict[str, Any]:
        note = {"_id": new_id(), "chart_id": chart["_id"], "author_id": author_id, "text": text,
                "created_at": _now()}
        await self.notes.insert_one(with_events(note, events.note_added(note, chart_author_id=chart["author_id"])))
        self._wrote(NOTES, note["_id"])
        return note

    async def notes_of(self, chart_id: str) -> list[dict[str, Any]]:
        return await self.notes.find({"chart_id": chart_id}, NO_OUTBOX).sort("_id", ASCENDING).to_list()

    # ---- grants ------------------------------------------------------------------------------------

    async def grants_reaching(self, viewer_id: str, office_ids: list[str], *,
                              owner_id: str | None = None) -> list[dict[str, Any]]:
        """Active grants naming the viewer directly or one of ``office_ids`` (the offices the viewer is a
        practitioner member of now)."""
        reach: list[dict[str, Any]] = [{"practitioner_ids": viewer_id}]
        if office_ids:
            reach.append({"office_ids": {"$in": office_ids}})
        query: dict[str, Any] = {"$or": reach, "revoked_at": None, "expired_at": None}
        if owner_id is not None:
            query["owner_id"] = owner_id
        return await self.grants.find(query, NO_OUTBOX).to_list()

    async def grants_covering(self, chart: dict[str, Any]) -> list[dict[str, Any]]:
        """The author's unrevoked, unexpired-by-sweep grants that may cover this chart (``covers`` decides)."""
        about = [{"rule": "all"}, {"rule": "patient", "patient_id": chart["patient_id"]},
                 {"rule": "chart", "chart_id": chart["_id"]}]
        query = {"owner_id": chart["author_id"], "revoked_at": None, "expired_at": None, "$or": about}
        return await self.grants.find(query, NO_OUTBOX).sort("_id", ASCENDING).to_list()

    async def create_grant(self, *, owner_id: str, rule: str, chart_id: str | None, patient_id: str | None,
                           practitioner_ids: list[str], office_ids: list[str],
                           expires_at: datetime | None = None) -> dict[str, Any]:
        """``patient_id`` of a ``chart`` grant is the chart's patient (kept for the accounting of
        disclosures; ``covers`` looks only at ``chart_id`` for that rule)."""
        now = now_ms()
        grant = {"_id": new_id(), "owner_id": owner_id, "rule": rule, "chart_id": chart_id,
                 "patient_id": patient_id, "practitioner_ids": practitioner_ids, "office_ids": office_ids,
                 "patient_consent": True, "consent_attested_by": owner_id, "consent_attested_at": now,
                 "created_at": now, "revoked_at": None, "expires_at": expires_at, "expired_at": None}
        await self.grants.insert_one(with_events(grant, events.share_granted(grant)))
        self._wrote(GRANTS, grant["_id"])
        return grant

    async def grant(self, grant_id: str, *, owner_id: str) -> dict[str, Any] | None:
        return await self.grants.find_one({"_id": grant_id, "owner_id": owner_id}, NO_OUTBOX)

    async def own_grants(self, owner_id: str, *, include_revoked: bool, page: PageQuery) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"owner_id": owner_id, **page.id_filter()}
        if not include_revoked:
            query["revoked_at"] = None
            query["expired_at"] = None
        return await self.grants.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def revoke_grant(self, grant: dict[str, Any]) -> bool:
        """Revoke an active grant, announcing it in the same write. False if it was already revoked."""
        res = await self.grants.update_one(
            {"_id": grant["_id"], "owner_id": grant["owner_id"], "revoked_at": None, "expired_at": None},
            push_events({"$set": {"revoked_at": _now()}}, events.share_revoked(grant)),
        )
        if res.modified_count:
            self._wrote(GRANTS, grant["_id"])
        return bool(res.modified_count)

    async def expire_due(self, now: datetime, *, batch: int = 100) -> int:
        """Announce grants past their ``expires_at``, each exactly once however many replicas sweep: the
        claim is an insert into ``chart_expiries`` whose ``_id`` is the grant id and which carries the
        ``charts.share.expired`` event (only the winner's insert succeeds); the grant is then marked
        ``expired_at`` so it is no longer due. Returns how many grants this call claimed."""
        due = await self.grants.find({"revoked_at": None, "expired_at": None, "expires_at": {"$lte": now}},
                                     NO_OUTBOX).limit(batch).to_list()
        claimed = 0
        for grant in due:
            if await insert_once(self.expiries, {"_id": grant["_id"], "owner_id": grant["owner_id"], "at": now},
                                 events.share_expired(grant)):
                claimed += 1
                self._wrote(EXPIRIES, grant["_id"])
            await self.grants.update_one({"_id": grant["_id"], "expired_at": None}, {"$set": {"expired_at": now}})
        return claimed

    # ---- the access log ----------------------------------------------------------------------------

    async def record_access(self, *, chart: dict[str, Any], accessor_id: str, accessor_kind: str,
                            grant_ids: list[str]) -> dict[str, Any]:
        """One read by someone other than the author: the log entry and its ``charts.chart.accessed`` event
        in one insert, so the read is accounted for even while the broker is down."""
        entry = {"_id": new_id(), "chart_id": chart["_id"], "author_id": chart["author_id"],
                 "patient_id": chart["patient_id"], "accessor_id": accessor_id, "accessor_kind": accessor_kind,
                 "grant_ids": grant_ids, "at": now_ms()}
        await self.accesses.insert_one(with_events(entry, events.chart_accessed(entry)))
        self._wrote(ACCESSES, entry["_id"])
        return entry

    async def accesses_of(self, chart_id: str, page: PageQuery) -> list[dict[str, Any]]:
        query = {"chart_id": chart_id, **page.id_filter()}
        return await self.accesses.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()
