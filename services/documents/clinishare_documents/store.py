"""The only module that talks to MongoDB: document metadata (``documents``) and content (GridFS).

A document's recipients are kept twice: ``shares`` (what the owner sees) and ``share_keys`` (one string
per recipient, multikey-indexed) so "documents shared with me" is one indexed ``$in`` over the reader's
keys, newest first, whose cost follows the page size and not the number of documents.
Every change that shares or unshares carries its events in the same single-document write (outbox).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from clinishare_shared.events import Envelope
from clinishare_shared.gridfs import FileInfo, GridStore
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.outbox import NO_OUTBOX, insert_once, push_events, with_events
from clinishare_shared.pagination import PageQuery

from clinishare_documents import events as document_events
from clinishare_documents.domain.access import Change, ShareState, expired_shares, share_keys

DOCUMENTS, ACCESSES, EXPIRIES = "documents", "document_accesses", "document_share_expiries"
NOT_DELETED = {"deleted_at": None}
# A multi-document label call reserves all its documents before it changes any (see ``claim``). Every
# write to a document is conditional on there being no live reservation of another call.
LOCK = "label_lock"
LOCK_TTL = timedelta(seconds=30)  # a reservation left by a crashed call stops counting after this


def _unlocked(now: datetime) -> dict[str, Any]:
    return {"$or": [{LOCK: None}, {f"{LOCK}.until": {"$lt": now}}]}
_HIDE = NO_OUTBOX


def shares_doc(state: ShareState) -> dict[str, Any]:
    return {
        "patient_ids": sorted(state.patient_ids),
        "practitioner_ids": sorted(state.practitioner_ids),
        "offices": [{"office_id": o, "audience": a} for o, a in sorted(state.offices)],
    }


def expiries_of(doc: dict[str, Any]) -> dict[str, datetime]:
    """Recipient key -> when its share expires (recipients without an expiry are not listed)."""
    return {e["key"]: e["expires_at"] for e in doc.get("expiries") or []}


def expiries_doc(expiries: dict[str, datetime]) -> list[dict[str, Any]]:
    return [{"key": k, "expires_at": v} for k, v in sorted(expiries.items())]


def shares_state(doc: dict[str, Any]) -> ShareState:
    s = doc.get("shares") or {}
    return ShareState.of(s.get("patient_ids", ()), s.get("practitioner_ids", ()),
                         ((o["office_id"], o["audience"]) for o in s.get("offices", ())))


class DocumentStore:
    def __init__(self, db: Any, *, bucket: str = "fs", kick: Callable[[], None] | None = None) -> None:
        self.db = db
        self.documents = db[DOCUMENTS]
        self.accesses = db[ACCESSES]
        self.expiries = db[EXPIRIES]
        self.grid = GridStore(db, bucket)
        self._kick = kick or (lambda: None)

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
        await self.accesses.create_index([("document_id", 1), ("_id", -1)], name="document_newest")

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

    async def create(self, *, owner_id: str, filename: str, content_type: str, patient_id: str | None,
                     info: FileInfo) -> dict[str, Any]:
        now = now_ms()
        doc = {
            "_id": new_id(), "owner_id": owner_id, "filename": filename, "content_type": content_type,
            "size": info.length, "sha256": info.sha256, "file_id": info.id, "patient_id": patient_id,
            "labels": [], "shares": shares_doc(ShareState()), "share_keys": [], "version": 1,
            "created_at": now, "updated_at": now, "deleted_at": None,
        }
        await self.documents.insert_one(with_events(doc, document_events.uploaded(doc)))
        self._kick()
        return doc

    async def get(self, document_id: str) -> dict[str, Any] | None:
        return await self.documents.find_one({"_id": document_id, **NOT_DELETED}, _HIDE)

    async def owned(self, owner_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        docs = await self.documents.find({"_id": {"$in": list(ids)}, "owner_id": owner_id, **NOT_DELETED},
                                         _HIDE).to_list()
        return {d["_id"]: d for d in docs}

    async def _page(self, query: dict[str, Any], page: PageQuery) -> list[dict[str, Any]]:
        return await self.documents.find({**query, **page.id_filter()}, _HIDE).sort("_id", -1) \
            .limit(page.limit + 1).to_list()

    async def list_mine(self, owner_id: str, *, patient_id: str | None, label: str | None,
                        page: PageQuery) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"owner_id": owner_id, **NOT_DELETED}
        if patient_id is not None:
            query["patient_id"] = patient_id
        if label is not None:
            query["labels"] = label
        return await self._page(query, page)

    async def list_shared(self, keys: list[str], *, patient_id: str | None, page: PageQuery) -> list[dict[str, Any]]:
        if not keys:
            return []
        query: dict[str, Any] = {"share_keys": {"$in": keys}, **NOT_DELETED}
        if patient_id is not None:
            query["patient_id"] = patient_id
        return await self._page(query, page)

    async def claim(self, docs: Iterable[dict[str, Any]], call_id: str) -> bool:
        """Reserve every document for ``call_id`` at the version it was read at, or none of them: False
        (nothing reserved) if any changed, went or is reserved by another call since it was read."""
        now, claimed = now_ms(), []
        for doc in docs:
            res = await self.documents.update_one(
                {"_id": doc["_id"], "version": doc["version"], **NOT_DELETED, **_unlocked(now)},
                {"$set": {LOCK: {"call": call_id, "until": now + LOCK_TTL}}, "$inc": {"version": 1}})
            if not res.matched_count:
                await self.release(claimed, call_id)
                return False
            claimed.append(doc["_id"])
        return True

    async def release(self, ids: Iterable[str], call_id: str) -> None:
        for doc_id in ids:
            await self.documents.update_one({"_id": doc_id, f"{LOCK}.call": call_id},
                                            {"$unset": {LOCK: ""}, "$inc": {"version": 1}})

    async def apply(self, doc_id: str, change: Change, events: list[Envelope], *, call_id: str,
                    expiries: dict[str, datetime]) -> dict[str, Any]:
        """Write ``change``, the recipients' expiries and the events to a document reserved for ``call_id``,
        ending the reservation."""
        update: dict[str, Any] = {
            "$set": {"labels": list(change.labels), "shares": shares_doc(change.shares),
                     "share_keys": share_keys(change.shares), "updated_at": now_ms(),
                     "expiries": expiries_doc(expiries)},
            "$unset": {LOCK: ""},
            "$inc": {"version": 1},
        }
        if events:
            update = push_events(update, *events)
        res = await self.documents.update_one({"_id": doc_id, f"{LOCK}.call": call_id, **NOT_DELETED}, update)
        if not res.matched_count:  # only when the reservation outlived LOCK_TTL and was taken over
            raise RuntimeError(f"label reservation of document {doc_id} was lost")
        if events:
            self._kick()
        doc = await self.get(doc_id)
        assert doc is not None
        return doc

    async def soft_delete(self, doc: dict[str, Any], events: list[Envelope]) -> bool:
        """Mark deleted, drop its recipients and name, and announce the unshare, in one write."""
        update: dict[str, Any] = {
            "$set": {"deleted_at": now_ms(), "shares": shares_doc(ShareState()), "share_keys": [],
                     "labels": [], "expiries": []},
            "$unset": {"filename": ""},
            "$inc": {"version": 1},
        }
        if events:
            update = push_events(update, *events)
        res = await self.documents.update_one(
            {"_id": doc["_id"], "version": doc["version"], **NOT_DELETED, **_unlocked(now_ms())}, update)
        if res.matched_count and events:
            self._kick()
        return bool(res.matched_count)

    async def expire_due(self, now: datetime, *, batch: int = 100) -> int:
        """Announce and drop the recipients whose share has expired. Each expiry (document, recipient, time)
        is claimed by a unique insert into ``document_share_expiries`` carrying its
        ``documents.share.expired`` event, so of several replicas sweeping at once exactly one announces it,
        on every engine; then the recipients are dropped from the document (version-checked; a lost race
        is retried by the next sweep, whose claims then find the expiry already announced).
        Returns how many expiries this call claimed."""
        due = await self.documents.find({**NOT_DELETED, "expiries.expires_at": {"$lte": now}}, _HIDE) \
            .limit(batch).to_list()
        claimed = 0
        for doc in due:
            expiries = expiries_of(doc)
            shares = shares_state(doc)
            for key, at in sorted(expiries.items()):
                gone = expired_shares(shares, {key: at}, now)
                if not gone:
                    continue
                fact = {"_id": f"{doc['_id']}|{key}|{at.isoformat()}", "document_id": doc["_id"], "at": now}
                if await insert_once(self.expiries, fact, document_events.share_expired(doc, gone, expires_at=at)):
                    claimed += 1
            remaining = shares - expired_shares(shares, expiries, now)
            keep = {k: v for k, v in expiries.items() if v > now}
            await self.documents.update_one(
                {"_id": doc["_id"], "version": doc["version"], **NOT_DELETED, **_unlocked(now_ms())},
                {"$set": {"shares": shares_doc(remaining), "share_keys": share_keys(remaining),
                          "expiries": expiries_doc(keep), "updated_at": now_ms()}, "$inc": {"version": 1}})
        if claimed:
            self._kick()
        return claimed

    # ---- the access log ----------------------------------------------------------------------------

    async def record_access(self, *, doc: dict[str, Any], accessor_id: str, accessor_kind: str,
                            grant_ids: list[str]) -> None:
        """A download by someone other than the owner: the log entry and its event in one insert."""
        entry = {"_id": new_id(), "document_id": doc["_id"], "owner_id": doc["owner_id"],
                 "patient_id": doc.get("patient_id"), "accessor_id": accessor_id, "accessor_kind": accessor_kind,
                 "grant_ids": grant_ids, "at": now_ms()}
        await self.accesses.insert_one(with_events(entry, document_events.document_accessed(entry)))
        self._kick()
