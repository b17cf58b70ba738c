"""The only module that talks to MongoDB: notifications (inbox entries carrying their e-mail delivery
state) and preferences.

A notification's ``_id`` is ``"{event_id}:{recipient_id}"``, so a redelivered event, even delivered
several times at once, inserts it once; the e-mail rides on that one document, so it goes out once.
Ids are therefore not ObjectIds: listings page by ``seq``, a time-ordered ObjectId hex from ``new_id``.
The documents are built by the use cases (``service``); notify publishes nothing, so no write stages events.

The e-mail due queue (``email_due``): one small document per e-mail that may need work, ``_id`` = the
notification's, with ``due_at``. The worker finds due e-mails there (FerretDB's SQLite handler scans a
collection for any filter but a bare ``_id`` equality: scanning this queue, which holds only e-mails in
flight, instead of every notification ever made) and reads their notifications by ``_id``. The queue is a
superset: whatever makes an e-mail pending writes its entry FIRST, so a crash between the two writes
leaves an entry whose notification the worker re-checks, never a pending e-mail without one. An entry is
deleted only once its e-mail is settled for good (sent, failed, skipped for a reason that never reopens),
or when it named no e-mail that needs work for ``QUEUE_GRACE`` (then only if no writer touched it since:
each write gives it a new ``stamp``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo.errors import BulkWriteError

from clinishare_shared.lookups import ChunkedSets
from clinishare_shared.mongo import delete_by_ids, find_by_id, find_by_ids, insert_new, new_id, now_ms, update_by_ids

from clinishare_notify.domain.stored import EmailState, NotificationDoc, notification_id

log = structlog.get_logger("clinishare.notify.store")
NOTIFICATIONS, PREFERENCES, WITHDRAWN, EMAIL_DUE = "notifications", "notification_preferences", "withdrawn", "email_due"
# how long a queue entry may name a notification that is missing or skipped for want of an address (its
# writer may be between its two writes) before it is dropped; looked at again every QUEUE_RECHECK meanwhile
QUEUE_GRACE = timedelta(seconds=30)
# the notice lookup: ``grant:<id>`` / ``document:<id>`` -> the ids of the notices that told of it
REFS, REFS_INDEXED = "notice_refs", "indexed"
REFS_CHUNK = 512
_REF_FIELDS = ("grant_id", "document_id")
QUEUE_RECHECK = timedelta(seconds=1)
# of these notices' claimed e-mails, the ones this process's worker gives up (``EmailIntake.withdraw``)
Held = Callable[[list[str]], list[str]]


def now() -> datetime:
    """The one clock (``mongo.now_ms``: what a write returns equals what a later read returns)."""
    return now_ms()


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _ref_keys(ref: dict[str, str]) -> list[str]:
    return [f"{f.removesuffix('_id')}:{ref[f]}" for f in _REF_FIELDS if f in ref]


def _email_due(email: EmailState, at: datetime) -> bool:
    """Pending and due, or claimed by a worker whose lease ran out."""
    if email["status"] == "pending":
        return aware(email.get("next_attempt_at") or at) <= at
    return email["status"] == "sending" and aware(email.get("lease_until") or at) <= at


class NotifyStore:
    def __init__(self, db: Any) -> None:
        self.db = db
        self.notifications = db[NOTIFICATIONS]
        self.preferences = db[PREFERENCES]
        self.withdrawn = db[WITHDRAWN]
        self.email_claims = db["email_claims"]
        self.email_due = db[EMAIL_DUE]
        self.refs = db[REFS]
        self.ref_sets = ChunkedSets(self.refs, "ids", chunk=REFS_CHUNK)

    async def ensure_indexes(self) -> None:
        await self.notifications.create_index([("recipient_id", 1), ("seq", -1)], name="inbox")
        await self.notifications.create_index([("recipient_id", 1), ("read", 1), ("seq", -1)], name="inbox_unread")
        await self.notifications.create_index([("email.status", 1), ("email.next_attempt_at", 1)], name="email_due")
        await self.email_due.create_index("due_at", name="due")
        await self.notifications.create_index("ref.grant_id", name="by_grant", sparse=True)
        await self.notifications.create_index([("recipient_id", 1), ("email.status", 1)], name="by_recipient_email")

    # ---- notifications -------------------------------------------------------------------------------

    async def insert(self, notification: NotificationDoc, *, new_refs: bool = False) -> bool:
        """Insert the notification (its pending e-mail queued first; one inserted already claimed is queued
        for when its claim runs out, should its worker die before it is sent); False when it is already
        there (a redelivery). ``new_refs``: what it tells of is new (a grant just made), so its notice lookup
        most likely does not exist yet (``ChunkedSets.add``'s ``new``)."""
        email = notification["email"]
        first = [self.remember_refs(notification, new=new_refs)]
        if email["status"] in ("pending", "sending"):
            due = email.get("next_attempt_at") or email.get("lease_until") or now()
            first.append(self.queue_emails([notification["_id"]], due, new=True))
        await asyncio.gather(*first)  # both before the insert (each a superset its reader re-checks)
        return await insert_new(self.notifications, notification)

    async def page(self, recipient_id: str, *, unread: bool | None, limit: int,
                   cursor: str | None) -> tuple[list[NotificationDoc], str | None]:
        query: dict[str, Any] = {"recipient_id": recipient_id}
        if unread is not None:
            query["read"] = not unread
        if cursor:
            query["seq"] = {"$lt": cursor}
        docs: list[NotificationDoc] = await self.notifications.find(query).sort("seq", -1).limit(limit + 1).to_list()
        if len(docs) > limit:
            docs = docs[:limit]
            return docs, docs[-1]["seq"]
        return docs, None

    async def get(self, notification_id: str, recipient_id: str) -> NotificationDoc | None:
        return await find_by_id(self.notifications, notification_id, where={"recipient_id": recipient_id})

    async def mark_read(self, notification_id: str, recipient_id: str) -> NotificationDoc | None:
        """Mark read (idempotent: an already-read one keeps its first read_at)."""
        await self.notifications.update_one({"_id": notification_id, "recipient_id": recipient_id, "read": False},
                                            {"$set": {"read": True, "read_at": now()}})
        return await self.get(notification_id, recipient_id)

    # ---- withdrawals (tombstones): a revoke or unshare that overtakes its grant still wins ----------

    async def tombstone(self, keys: list[str], at: datetime) -> None:
        """Remember that what ``keys`` name was withdrawn at ``at`` (the withdrawing event's time). A
        notifying event about the same thing that is older, and arrives later, is then dropped."""
        for key in keys:
            await self.withdrawn.update_one({"_id": key}, {"$max": {"at": at}}, upsert=True)

    async def withdrawn_since(self, keys: list[str], at: datetime) -> set[str]:
        """Which of ``keys`` were withdrawn at or after ``at``."""
        if not keys:
            return set()
        docs = await find_by_ids(self.withdrawn, keys)
        # stored times have millisecond precision: compare at that precision (a tie counts as withdrawn)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        return {d["_id"] for d in docs if aware(d["at"]) >= at}

    # ---- what a grant or a document share told whom: the notice lookup (``notice_refs``) --------------

    async def remember_refs(self, notification: NotificationDoc, *, new: bool = False) -> None:
        """Add the notification's id to the lookup documents of the grant and the document it tells of
        (``grant:<id>``, ``document:<id>``). Called BEFORE its insert: a crash between leaves an id that
        names nothing (``_told`` re-checks), never a notice the lookup misses. ``new``: see ``insert``."""
        for key in _ref_keys(notification["ref"]):
            await self.ref_sets.add(key, notification["_id"], new=new)

    async def index_refs(self, *, force: bool = False) -> int:
        """Fill the lookup from the notifications written before it existed: a scan of the notifications,
        once (a marker records that it ran to its end; ``force``: again, for ``rebuild-lookups``). How many
        lookup keys were written."""
        if not force and await self.refs.find_one({"_id": REFS_INDEXED}):
            return 0
        by_key: dict[str, list[str]] = defaultdict(list)
        async for doc in self.notifications.find({"$or": [{f"ref.{f}": {"$exists": True}} for f in _REF_FIELDS]},
                                                 {"ref": 1}):
            for key in _ref_keys(doc.get("ref") or {}):
                by_key[key].append(doc["_id"])
        for key, ids in by_key.items():
            await self.ref_sets.add(key, *ids)
        await self.refs.update_one({"_id": REFS_INDEXED}, {"$set": {"at": now()}}, upsert=True)
        return len(by_key)

    async def _told(self, field: str, value: str) -> list[NotificationDoc]:
        """The notices that told of this grant or document (``field`` ``grant_id`` or ``document_id``): the
        ids in its lookup document, each read by ``_id`` and checked."""
        key = f"{field.removesuffix('_id')}:{value}"
        docs = await find_by_ids(self.notifications, (await self.ref_sets.members([key])).get(key, []))
        return [d for d in docs if d.get("ref", {}).get(field) == value]

    async def told_about(self, *, grant_id: str | None = None, document_id: str | None = None) -> set[str]:
        """Who was told of this grant or document being shared with them (not of its end)."""
        docs = await (self._told("grant_id", grant_id) if grant_id is not None
                      else self._told("document_id", document_id or ""))
        return {d["recipient_id"] for d in docs}

    async def _withdraw(self, docs: list[NotificationDoc], held: Held | None = None) -> int:
        """Unread notices marked read and withdrawn, pending e-mails cancelled (each by bare ``_id``). An
        e-mail a worker already claimed still goes out, unless it is one that ``held`` gives up: the
        e-mails this process's worker took from the consumer and has not begun to send (``EmailIntake``),
        whose claim is ours. How many were unread."""
        sending = [d["_id"] for d in docs if d["email"]["status"] == "sending"]
        given_up = held(sending) if held is not None and sending else []
        await update_by_ids(self.notifications,
                            [d["_id"] for d in docs if d["email"]["status"] == "pending"] + given_up,
                            {"$set": {"email.status": "skipped", "email.reason": "withdrawn"},
                             "$unset": {"email.next_attempt_at": "", "email.lease_until": ""}})
        unread = [d["_id"] for d in docs if not d["read"]]
        await update_by_ids(self.notifications, unread, {"$set": {"read": True, "read_at": now(), "withdrawn": True}})
        return len(unread)

    async def withdraw_grant(self, grant_id: str, held: Held | None = None) -> int:
        """A revoked chart grant: its unread notices are marked read (the link no longer opens anything)
        and e-mails not yet sent are cancelled."""
        return await self._withdraw(await self._told("grant_id", grant_id), held)

    async def withdraw_document(self, document_id: str, recipient_ids: list[str], *, event_id: str,
                                held: Held | None = None) -> int:
        """The notices one share event of ``document_id`` gave these recipients: unread ones marked read,
        pending e-mails cancelled."""
        docs = await find_by_ids(self.notifications, [notification_id(event_id, r) for r in recipient_ids])
        return await self._withdraw([d for d in docs if d.get("ref", {}).get("document_id") == document_id], held)

    async def reopen_no_address(self, recipient_id: str) -> int:
        """E-mails skipped for want of an address become due once the address is known (queued first)."""
        query = {"recipient_id": recipient_id, "email.status": "skipped", "email.reason": "no_address",
                 "withdrawn": {"$ne": True}}
        ids = [d["_id"] async for d in self.notifications.find(query, {"_id": 1})]
        if not ids:
            return 0
        at = now()
        await self.queue_emails(ids, at)
        res = await self.notifications.update_many(
            query, {"$set": {"email.status": "pending", "email.next_attempt_at": at}, "$unset": {"email.reason": ""}})
        return res.modified_count

    async def no_address_recipients(self) -> list[str]:
        """Who has e-mails skipped for want of an address."""
        return await self.notifications.distinct("recipient_id", {"email.status": "skipped",
                                                                   "email.reason": "no_address"})

    # ---- e-mail delivery -----------------------------------------------------------------------------

    async def queue_emails(self, notification_ids: list[str], due_at: datetime, *, new: bool = False) -> None:
        """Put e-mails on the due queue (or make their entries due at ``due_at``), each with a new stamp.
        Called BEFORE the write that makes them pending (see the module's docstring). ``new``: e-mails of
        notifications about to be inserted, whose entries most likely do not exist yet: each is written
        by an insert (on FerretDB an upsert is a locked read and write), and by the update only if it
        exists after all (a redelivery)."""
        since = now()
        for nid in notification_ids:  # by bare _id: FerretDB looks these up instead of scanning
            entry = {"due_at": due_at, "since": since, "stamp": new_id()}
            if new and await insert_new(self.email_due, {"_id": nid, **entry}):
                continue
            await self.email_due.update_one({"_id": nid}, {"$set": entry}, upsert=True)

    async def dequeue_emails(self, notification_ids: list[str]) -> None:
        """Drop the entries of e-mails settled for good (after the write that settled them)."""
        await delete_by_ids(self.email_due, notification_ids)

    async def queue_unqueued(self) -> int:
        """Queue every pending or in-flight e-mail that has no entry (notifications written before the
        queue existed): a scan of the notifications, run once when a worker starts. How many were queued."""
        queued = 0
        async for doc in self.notifications.find({"email.status": {"$in": ["pending", "sending"]}}, {"email": 1}):
            due = doc["email"].get("next_attempt_at") or doc["email"].get("lease_until") or now()
            res = await self.email_due.update_one(
                {"_id": doc["_id"]}, {"$setOnInsert": {"due_at": due, "since": now(), "stamp": new_id()}}, upsert=True)
            queued += 1 if res.upserted_id is not None else 0
        return queued

    async def _settle_entry(self, entry: dict[str, Any], doc: NotificationDoc | None, at: datetime) -> None:
        """An entry that came due but whose e-mail is not due: make it due when the e-mail is, or drop it."""
        email = doc["email"] if doc is not None else None
        if email is not None and email["status"] == "pending":
            due = email.get("next_attempt_at") or at
        elif email is not None and email["status"] == "sending":
            due = email.get("lease_until") or at
        elif email is not None and not (email["status"] == "skipped" and email.get("reason") == "no_address"
                                        and not doc.get("withdrawn")):  # type: ignore[union-attr]
            await self.email_due.delete_one({"_id": entry["_id"]})  # settled for good: nothing reopens it
            return
        elif aware(entry["since"]) <= at - QUEUE_GRACE:
            # no notification, or one that only a known address would reopen (and the reopening writes its
            # entry anew first): dropped unless a writer touched it since we read it
            await self.email_due.delete_one({"_id": entry["_id"], "stamp": entry["stamp"]})
            return
        else:  # its writer may be between its two writes: look again soon
            due = at + QUEUE_RECHECK
        await self.email_due.update_one({"_id": entry["_id"], "stamp": entry["stamp"]}, {"$set": {"due_at": due}})

    async def claim_emails(self, *, lease_seconds: float, limit: int = 10) -> list[NotificationDoc]:
        """Take up to ``limit`` due e-mails: pending and due, or claimed by a worker whose lease ran out.
        The due ones are found on the queue (``email_due``, small), their notifications read by ``_id``;
        an entry whose e-mail turns out not to be due is settled (``_settle_entry``) and the next ones read.

        Each claim is an INSERT of ``<notification id>#<attempt>`` into ``email_claims``: its unique ``_id``
        lets exactly one worker own each attempt on every engine (FerretDB 1.24 does not isolate a
        conditional update, so "set sending where pending" would let two replicas send the same e-mail)."""
        at = now()
        due: list[NotificationDoc] = []
        while not due:
            entries = await self.email_due.find({"due_at": {"$lte": at}}).sort("due_at", 1).limit(limit).to_list()
            if not entries:
                return []
            docs = {d["_id"]: d for d in await find_by_ids(self.notifications, [e["_id"] for e in entries])}
            for entry in entries:
                doc = docs.get(entry["_id"])
                if doc is not None and _email_due(doc["email"], at):
                    due.append(doc)
                else:
                    await self._settle_entry(entry, doc, at)
            if len(entries) < limit:
                break
        if not due:
            return []
        attempts = [int(doc["email"].get("attempts", 0)) + 1 for doc in due]
        lost: set[int] = set()
        try:
            await self.email_claims.insert_many(
                [{"_id": f"{doc['_id']}#{n}", "at": at} for doc, n in zip(due, attempts)], ordered=False)
        except BulkWriteError as exc:  # another worker took those attempts
            lost = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000}
            if len(lost) != len(exc.details.get("writeErrors", [])):
                raise
        if lost:
            lost = await self._retake_stale_claims({i: f"{due[i]['_id']}#{attempts[i]}" for i in lost}, at,
                                                   lease_seconds)
        mine = [(doc, n) for i, (doc, n) in enumerate(zip(due, attempts)) if i not in lost]
        if not mine:
            return []
        # the lease runs from now, after the claims: what took long to claim still has all of it
        until = now() + timedelta(seconds=lease_seconds)
        ids = [doc["_id"] for doc, _ in mine]
        # the entries come due again when the lease runs out (a worker that dies mid-send is taken over)
        await update_by_ids(self.email_due, ids, {"$set": {"due_at": until}})
        await update_by_ids(self.notifications, ids, {"$set": {"email.status": "sending", "email.lease_until": until},
                                                      "$inc": {"email.attempts": 1}})
        return [{**doc, "email": EmailState(**{**doc["email"], "status": "sending", "attempts": n,
                                                "lease_until": until})} for doc, n in mine]

    async def _retake_stale_claims(self, claims: dict[int, str], at: datetime, lease_seconds: float) -> set[int]:
        """Of the attempts another worker claimed first (index -> claim id), take over those claimed more
        than a lease ago: their e-mail is still due as it was, so that worker died between claiming and
        marking it sending, and without this the attempt would stay claimed, and the e-mail unsent, for
        ever. The stale claim is deleted by its exact ``at`` and claimed anew by a unique insert, so one
        worker wins. The indexes still lost."""
        still: set[int] = set()
        for i, claim_id in claims.items():
            claim = await self.email_claims.find_one({"_id": claim_id})
            if claim is not None and aware(claim["at"]) <= at - timedelta(seconds=lease_seconds):
                await self.email_claims.delete_one({"_id": claim_id, "at": claim["at"]})
                if await insert_new(self.email_claims, {"_id": claim_id, "at": at}):
                    log.warning("email_claim_taken_over", claim=claim_id)
                    continue
            still.add(i)
        return still

    async def _finish(self, notification_id: str, fields: dict[str, Any]) -> None:
        unset = {"email.lease_until": ""}
        if fields["status"] != "pending":
            unset["email.next_attempt_at"] = ""
        await self.notifications.update_one({"_id": notification_id, "email.status": "sending"},
                                            {"$set": {f"email.{k}": v for k, v in fields.items()}, "$unset": unset})

    async def emails_sent(self, notification_ids: list[str]) -> None:
        """Record sends, a batch in one write (on FerretDB every read-modify-write of a collection is
        serialized, ``AtomicWritesClient``, so one write per e-mail bounded the rate of all replicas), each
        statement by bare ``_id``. Unconditionally: whatever another worker recorded meanwhile (its claim
        after our lease ran out failed, skipped or sent it too), this e-mail was sent."""
        if not notification_ids:
            return
        await update_by_ids(self.notifications, notification_ids, {
            "$set": {"email.status": "sent", "email.sent_at": now(), "email.last_error": None},
            "$unset": {"email.lease_until": "", "email.next_attempt_at": ""}})
        await self.dequeue_emails(notification_ids)

    async def email_skipped(self, notification_id: str, reason: str) -> None:
        await self._finish(notification_id, {"status": "skipped", "reason": reason})
        if reason != "no_address":  # a known address reopens that one (its entry is left to the worker)
            await self.dequeue_emails([notification_id])

    async def email_failed(self, notification_id: str, *, error: str, retry_at: datetime | None) -> None:
        """Record a failed send: retried at ``retry_at`` (queued for then first), or given up for good when
        it is None."""
        if retry_at is None:
            await self._finish(notification_id, {"status": "failed", "last_error": error, "failed_at": now()})
            await self.dequeue_emails([notification_id])
        else:
            await self.queue_emails([notification_id], retry_at)
            await self._finish(notification_id, {"status": "pending", "last_error": error, "next_attempt_at": retry_at})

    # ---- preferences ---------------------------------------------------------------------------------

    async def wants_email(self, account_id: str) -> bool:
        return (await self.wants_emails([account_id]))[account_id]

    async def wants_emails(self, account_ids: Iterable[str]) -> dict[str, bool]:
        """``wants_email`` of each account, in one read for them all."""
        ids = list(dict.fromkeys(account_ids))
        prefs = {p["_id"]: bool(p.get("email", True)) for p in await find_by_ids(self.preferences, ids)}
        return {i: prefs.get(i, True) for i in ids}

    async def set_email_preference(self, account_id: str, email: bool) -> None:
        await self.preferences.update_one({"_id": account_id}, {"$set": {"email": email, "updated_at": now()}},
                                          upsert=True)
