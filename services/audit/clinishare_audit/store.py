"""The only module that talks to MongoDB: the disclosure entries, one hash chain per patient (and one
per author for chart grants under rule ``all``).

Appends are serialized per chain without transactions: an entry's position is claimed by inserting it
with a unique ``(chain, seq)``; of two appenders racing for one position exactly one insert succeeds (on
every engine, FerretDB included, where conditional updates are not isolated), the other re-reads the
chain's last entry and tries the next position (``service.append``). A unique ``(event_id, chain)`` makes
recording an event idempotent: a redelivered event, even one delivered to two replicas at once, is
recorded once. A ``chain_heads`` document per chain names its last entry, so an append reads two documents
by ``_id`` instead of the chain; it is a hint (a stale one costs one failed insert and one full look).
Each process also remembers the last entry it wrote or read in the chains it appended to lately, so an
append to a chain this process wrote last reads nothing: the same hint, kept in memory, and stale in the
same harmless way when another replica appended since. audit publishes nothing, so no write stages events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from clinishare_audit.domain.stored import DisclosureDoc
from clinishare_shared.locks import KeyedLocks
from clinishare_shared.mongo import insert_new, scans_id_sets
from clinishare_shared.pagination import PageQuery

ENTRIES, HEADS = "disclosures", "chain_heads"
LAST_KEPT = 10_000  # chains whose last entry a process keeps in memory (the least recently appended go)


class AuditStore:
    def __init__(self, db: Any) -> None:
        self.db = db
        self.entries = db[ENTRIES]
        self.heads = db[HEADS]
        self._conflicted: set[str] = set()  # chains whose last insert here failed: look at them in full
        self.appending = KeyedLocks()  # chain -> the append running in this process (service.append)
        self._last: OrderedDict[str, DisclosureDoc] = OrderedDict()  # chain -> its last entry, as seen here

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("chain", ASCENDING), ("seq", ASCENDING)], unique=True, name="position")
        await self.entries.create_index([("event_id", ASCENDING), ("chain", ASCENDING)], unique=True, name="once")
        await self.entries.create_index([("chain", ASCENDING), ("_id", DESCENDING)], name="chain_newest")

    async def last(self, chain: str) -> DisclosureDoc | None:
        """The chain's last entry. Fast path: the entry the ``chain_heads`` hint names, read by ``_id``
        (on FerretDB any other filter scans every entry, and this ran for every append). The hint is only
        a hint: if it is stale, the insert at the position after it fails on the unique position, and the
        next look (``_conflicted``) reads the chain itself and repairs the hint."""
        if chain not in self._conflicted:
            if (kept := self._last.get(chain)) is not None:
                self._last.move_to_end(chain)
                return kept
            head = await self.heads.find_one({"_id": chain})
            if head is not None:
                entry: DisclosureDoc | None = await self.entries.find_one({"_id": head["entry_id"]})
                if entry is not None:
                    self._keep(entry)
                    return entry
        found: list[DisclosureDoc] = await self.entries.find({"chain": chain}).sort("seq", DESCENDING).limit(1).to_list()
        if found:
            await self._advance_head(found[0])
            self._keep(found[0])
        return found[0] if found else None

    def _keep(self, entry: DisclosureDoc) -> None:
        self._last[entry["chain"]] = entry
        self._last.move_to_end(entry["chain"])
        if len(self._last) > LAST_KEPT:
            self._last.popitem(last=False)

    async def recorded(self, event_id: str, chain: str) -> bool:
        """Whether this event is in this chain. Asked of the database only after an insert into the chain
        failed: otherwise the unique ``(event_id, chain)`` makes a repeat's insert fail, and the retry asks."""
        if chain not in self._conflicted:
            return False
        return await self.entries.find_one({"event_id": event_id, "chain": chain}, {"_id": 1}) is not None

    async def insert(self, entry: DisclosureDoc) -> bool:
        """False when its position (or this event in this chain) was taken meanwhile."""
        if not await insert_new(self.entries, entry):
            self._conflicted.add(entry["chain"])
            self._last.pop(entry["chain"], None)
            return False
        self._conflicted.discard(entry["chain"])
        self._keep(entry)
        await self._advance_head(entry)
        return True

    async def _advance_head(self, entry: DisclosureDoc) -> None:
        """Point the chain's hint at ``entry`` unless it names a later one already. On FerretDB, whose
        SQLite handler serves only a bare ``{"_id": x}`` filter from an index (the conditional update read
        every chain's head, one per patient and author), the hint is set by ``_id`` alone: a replica that
        appended the next entry in the same instant may see its hint set back, which makes the hint stale,
        and a stale hint costs the next append one failed insert and one full look, as above."""
        fields = {"seq": entry["seq"], "entry_id": entry["_id"]}
        if await scans_id_sets(self.heads):
            try:
                await self.heads.update_one({"_id": entry["chain"]}, {"$set": fields}, upsert=True)
            except DuplicateKeyError:  # two first appends upserted at once: the head exists now
                await self.heads.update_one({"_id": entry["chain"]}, {"$set": fields})
            return
        if (await self.heads.update_one({"_id": entry["chain"], "seq": {"$lt": entry["seq"]}},
                                        {"$set": fields})).matched_count:
            return
        await insert_new(self.heads, {"_id": entry["chain"], **fields})  # taken: a head exists already

    @staticmethod
    def _query(chains: Iterable[str], since: datetime | None, until: datetime | None) -> dict[str, Any]:
        query: dict[str, Any] = {"chain": {"$in": sorted(set(chains))}}
        at: dict[str, Any] = {}
        if since is not None:
            at["$gte"] = since
        if until is not None:
            at["$lte"] = until
        if at:
            query["at"] = at
        return query

    async def page(self, chains: Iterable[str], *, since: datetime | None, until: datetime | None,
                   page: PageQuery) -> list[DisclosureDoc]:
        """Entries of these chains, newest first."""
        query = {**self._query(chains, since, until), **page.id_filter()}
        return await self.entries.find(query).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def all(self, chains: Iterable[str], *, since: datetime | None,
                  until: datetime | None) -> AsyncIterator[DisclosureDoc]:
        async for doc in self.entries.find(self._query(chains, since, until)).sort("_id", DESCENDING):
            yield doc

    async def chain(self, chain: str) -> list[DisclosureDoc]:
        return await self.entries.find({"chain": chain}).sort("seq", ASCENDING).to_list()
