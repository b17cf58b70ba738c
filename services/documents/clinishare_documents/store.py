"""The only module that talks to MongoDB: document metadata (``documents``), content (GridFS), the access
log and the label calls' intents. It hands out and takes in the typed documents of ``domain.stored``;
events are built by the service and written here in the same single-document write as their change
(outbox), and every such write names its document to the relay (``kick``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from clinishare_shared.events import Envelope
from clinishare_shared.gridfs import FileInfo, GridStore
from clinishare_shared.mongo import ensure_ttl_index, find_by_id, find_by_ids, insert_new, matches, now_ms
from clinishare_shared.outbox import Kick, NO_OUTBOX, insert_once, no_kick, push_events, with_events
from clinishare_shared.pagination import PageQuery

from clinishare_documents.domain.access import ShareState, share_keys
from clinishare_documents.domain.stored import (
    AccessEntry, Document, LabelIntent, PlannedDocument, Reservation, Shares, expiry_list,
)

DOCUMENTS, ACCESSES, EXPIRIES = "documents", "document_accesses", "document_share_expiries"
INTENTS, INTENT_CLAIMS = "document_label_intents", "document_label_intent_claims"
NOT_DELETED = {"deleted_at": None}
# A label call reserves all its documents before it changes any (``reserve``). Every other write to a
# document is conditional on there being no reservation at all: a reservation ends only when its call's
# change is written, or when the sweeper has fenced off a call that never reached its intent (``abort``).
LOCK = "label_lock"
UNLOCKED = {LOCK: None}
FINISHED_KEPT = timedelta(days=1)  # finished intents and roll-forward claims are purged after this
_HIDE = NO_OUTBOX


def _staging(update: dict[str, Any], events: Iterable[Envelope]) -> dict[str, Any]:
    events = list(events)
    return push_events(update, *events) if events else update


class DocumentStore:
    def __init__(self, db: Any, *, bucket: str = "fs",
                 kick: Kick = no_kick) -> None:
        self.db = db
        self.documents = db[DOCUMENTS]
        self.accesses = db[ACCESSES]
        self.expiries = db[EXPIRIES]
        self.intents = db[INTENTS]
        self.intent_claims = db[INTENT_CLAIMS]
        self.grid = GridStore(db, bucket)
        self._kick = kick

    async def ensure_indexes(self) -> None:
        await self.grid.ensure_indexes()
        await self.documents.create_index([("owner_id", 1), ("deleted_at", 1), ("_id", -1)], name="mine")
        await self.documents.create_index([("owner_id", 1), ("deleted_at", 1), ("patient_id", 1), ("_id", -1)],
                                          name="mine_by_patient")
        await self.documents.create_index([("owner_id", 1), ("deleted_at", 1), ("labels", 1), ("_id", -1)],
                                          name="mine_by_label")
        await self.documents.create_index([("share_keys", 1), ("deleted_at", 1), ("_id", -1)], name="shared")
        await self.documents.create_index([("share_keys", 1), ("deleted_at", 1), ("patient_id", 1), ("_id", -1)],
                                          name="shared_by_patient")
        await self.documents.create_index([("expiries.expires_at", 1)], name="expiry")
        await self.documents.create_index([(f"{LOCK}.until", 1)], name="reservation_until")
        await self.accesses.create_index([("document_id", 1), ("_id", -1)], name="document_newest")
        await self.intents.create_index([("done_at", 1), ("created_at", 1)], name="unfinished")
        await ensure_ttl_index(self.intents, "done_at", expire_after_seconds=int(FINISHED_KEPT.total_seconds()))
        await ensure_ttl_index(self.intent_claims, "at", expire_after_seconds=int(FINISHED_KEPT.total_seconds()))

    # ---- content -----------------------------------------------------------------------------------

    async def save_content(self, stream: AsyncIterator[bytes], *, filename: str, content_type: str,
                           max_size: int, owner_id: str) -> FileInfo:
        return await self.grid.upload(stream, filename=filename, content_type=content_type, max_size=max_size,
                                      metadata={"owner_id": owner_id})

    async def delete_content(self, file_id: str) -> None:
        await self.grid.delete(file_id)

    def content(self, file_id: str) -> AsyncIterator[bytes]:
        return self.grid.download(file_id)

    # ---- metadata ----------------------------------------------------------------------------------

    async def insert(self, doc: Document, *events: Envelope) -> None:
        await self.documents.insert_one(with_events(doc.to_mongo(), *events))
        if events:
            self._kick(DOCUMENTS, doc.id)

    async def get(self, document_id: str) -> Document | None:
        raw = await find_by_id(self.documents, document_id, _HIDE, where=NOT_DELETED)
        return None if raw is None else Document.model_validate(raw)

    async def owned(self, owner_id: str, ids: Iterable[str]) -> dict[str, Document]:
        # by _id alone (FerretDB scans for any other filter), then checked here
        docs = await find_by_ids(self.documents, ids, _HIDE)
        return {d["_id"]: Document.model_validate(d) for d in docs if matches(d, {"owner_id": owner_id, **NOT_DELETED})}

    async def _page(self, query: dict[str, Any], page: PageQuery) -> tuple[list[Document], str | None]:
        """A newest-first page and the next page's cursor."""
        raws, cursor = page.page(await self.documents.find({**query, **page.id_filter()}, _HIDE).sort("_id", -1)
                                 .limit(page.limit + 1).to_list())
        return [Document.model_validate(d) for d in raws], cursor

    async def list_mine(self, owner_id: str, *, patient_id: str | None, label: str | None,
                        page: PageQuery) -> tuple[list[Document], str | None]:
        query: dict[str, Any] = {"owner_id": owner_id, **NOT_DELETED}
        if patient_id is not None:
            query["patient_id"] = patient_id
        if label is not None:
            query["labels"] = label
        return await self._page(query, page)

    async def list_shared(self, keys: list[str], *, patient_id: str | None,
                          page: PageQuery) -> tuple[list[Document], str | None]:
        if not keys:
            return [], None
        query: dict[str, Any] = {"share_keys": {"$in": keys}, **NOT_DELETED}
        if patient_id is not None:
            query["patient_id"] = patient_id
        return await self._page(query, page)

    async def soft_delete(self, doc: Document, events: list[Envelope]) -> bool:
        """Mark deleted, drop its recipients and name, and announce it, in one write (version-checked)."""
        update = _staging({
            "$set": {"deleted_at": now_ms(), "shares": Shares().model_dump(), "share_keys": [],
                     "labels": [], "expiries": []},
            "$unset": {"filename": ""},
            "$inc": {"version": 1},
        }, events)
        res = await self.documents.update_one({"_id": doc.id, "version": doc.version, **NOT_DELETED, **UNLOCKED},
                                              update)
        if res.matched_count and events:
            self._kick(DOCUMENTS, doc.id)
        return bool(res.matched_count)

    # ---- label calls: reservations, intents, roll-forward --------------------------------------------

    async def reserve(self, docs: Iterable[Document], call_id: str, *, until: datetime) -> list[Document] | None:
        """Reserve every document for ``call_id`` at the version it was read at, or none of them: None
        (nothing reserved) if any changed, went or is reserved by another call since it was read. Returns
        the documents as reserved (their version is the one the call's change applies on top of)."""
        reserved: list[Document] = []
        for doc in docs:
            lock = Reservation(call=call_id, until=until)
            res = await self.documents.update_one(
                {"_id": doc.id, "version": doc.version, **NOT_DELETED, **UNLOCKED},
                {"$set": {LOCK: lock.model_dump()}, "$inc": {"version": 1}})
            if not res.matched_count:
                await self.release([d.id for d in reserved], call_id)
                return None
            reserved.append(doc.model_copy(update={"version": doc.version + 1, "label_lock": lock}))
        return reserved

    async def release(self, ids: Iterable[str], call_id: str) -> None:
        for doc_id in ids:
            await self.documents.update_one({"_id": doc_id, f"{LOCK}.call": call_id},
                                            {"$unset": {LOCK: ""}, "$inc": {"version": 1}})

    async def reserved_by(self, call_id: str) -> list[str]:
        return [d["_id"] for d in await self.documents.find({f"{LOCK}.call": call_id}, {"_id": 1}).to_list()]

    async def begin(self, intent: LabelIntent) -> bool:
        """Insert the call's intent: its commit point. False if the id is taken (the sweeper aborted it)."""
        return await insert_new(self.intents, intent.to_mongo())

    async def abort(self, call_id: str, *, now: datetime) -> LabelIntent | None:
        """Fence off a call whose reservations outlived their lease: a finished, aborted intent under the
        call's id, so the call can no longer commit. None if it could; else the intent that holds the id
        (the call's own, to roll forward, or an earlier abort)."""
        fence = LabelIntent(id=call_id, created_at=now, aborted=True, done_at=now)
        if await self.begin(fence):
            return None
        raw = await self.intents.find_one({"_id": call_id})
        return None if raw is None else LabelIntent.model_validate(raw)

    async def write_planned(self, intent_id: str, planned: PlannedDocument) -> bool:
        """Write one document's part of an intent, ending its reservation. Idempotent: it matches only the
        document still reserved by this intent at the reserved version, so a second write is a no-op and
        the events are staged once."""
        update = _staging({
            "$set": {"labels": planned.labels, "shares": planned.shares.model_dump(),
                     "share_keys": planned.share_keys, "updated_at": now_ms(),
                     "expiries": [e.model_dump() for e in planned.expiries]},
            "$unset": {LOCK: ""},
            "$inc": {"version": 1},
        }, planned.events)
        res = await self.documents.update_one(
            {"_id": planned.document_id, "version": planned.version, f"{LOCK}.call": intent_id}, update)
        if res.matched_count and planned.events:
            self._kick(DOCUMENTS, planned.document_id)
        return bool(res.matched_count)

    async def finish(self, intent_id: str) -> None:
        await self.intents.update_one({"_id": intent_id, "done_at": None}, {"$set": {"done_at": now_ms()}})

    async def unfinished(self, *, older_than: datetime, batch: int = 100) -> list[LabelIntent]:
        raws = await self.intents.find({"done_at": None, "created_at": {"$lt": older_than}}).limit(batch).to_list()
        return [LabelIntent.model_validate(r) for r in raws]

    async def claim_roll_forward(self, intent_id: str, generation: int, *, now: datetime) -> bool:
        """One roll-forward of an intent per lease period: a unique insert, so of racing workers one wins."""
        return await insert_new(self.intent_claims, {"_id": f"{intent_id}|{generation}", "at": now})

    async def stale_reservations(self, now: datetime, *, batch: int = 100) -> dict[str, str]:
        """Reservations whose lease ran out: call id -> one document it holds."""
        raws = await self.documents.find({f"{LOCK}.until": {"$lt": now}}, {LOCK: 1}).limit(batch).to_list()
        return {r[LOCK]["call"]: r["_id"] for r in raws}

    # ---- expiring shares -----------------------------------------------------------------------------

    async def due_expiries(self, now: datetime, *, batch: int = 100) -> list[Document]:
        raws = await self.documents.find({**NOT_DELETED, "expiries.expires_at": {"$lte": now}}, _HIDE) \
            .limit(batch).to_list()
        return [Document.model_validate(r) for r in raws]

    async def claim_expiry(self, doc: Document, key: str, at: datetime, *, now: datetime, event: Envelope) -> bool:
        """Claim one expiry (document, recipient, time) by a unique insert carrying its event: of several
        replicas sweeping at once exactly one stages it, on every engine."""
        fact_id = f"{doc.id}|{key}|{at.isoformat()}"
        if await insert_once(self.expiries, {"_id": fact_id, "document_id": doc.id, "at": now}, event):
            self._kick(EXPIRIES, fact_id)
            return True
        return False

    async def drop_recipients(self, doc: Document, remaining: ShareState, expiries: dict[str, datetime]) -> bool:
        """Keep only ``remaining`` recipients (version-checked; a lost race is retried by the next sweep)."""
        res = await self.documents.update_one(
            {"_id": doc.id, "version": doc.version, **NOT_DELETED, **UNLOCKED},
            {"$set": {"shares": Shares.of(remaining).model_dump(), "share_keys": share_keys(remaining),
                      "expiries": [e.model_dump() for e in expiry_list(expiries)], "updated_at": now_ms()},
             "$inc": {"version": 1}})
        return bool(res.matched_count)

    # ---- the access log ----------------------------------------------------------------------------

    async def record_access(self, entry: AccessEntry, event: Envelope) -> None:
        """A download by someone other than the owner: the log entry and its event in one insert."""
        await self.accesses.insert_one(with_events(entry.to_mongo(), event))
        self._kick(ACCESSES, entry.id)
