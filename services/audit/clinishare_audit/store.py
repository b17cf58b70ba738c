"""The only module that talks to MongoDB: the disclosure entries, one hash chain per patient (and one
per author for chart grants under rule ``all``).

Appends are serialized per chain without transactions: an entry's position is claimed by inserting it
with a unique ``(chain, seq)``; of two appenders racing for one position exactly one insert succeeds (on
every engine, FerretDB included, where conditional updates are not isolated), the other re-reads the
chain's last entry and tries the next position. A unique ``(event_id, chain)`` makes recording an event
idempotent: a redelivered event, even one delivered to two replicas at once, is recorded once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from clinishare_audit.domain.chain import GENESIS, seal
from clinishare_shared.mongo import new_id
from clinishare_shared.pagination import PageQuery

ENTRIES = "disclosures"
ATTEMPTS = 100


class AuditStore:
    def __init__(self, db: Any) -> None:
        self.db = db
        self.entries = db[ENTRIES]

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("chain", ASCENDING), ("seq", ASCENDING)], unique=True, name="position")
        await self.entries.create_index([("event_id", ASCENDING), ("chain", ASCENDING)], unique=True, name="once")
        await self.entries.create_index([("chain", ASCENDING), ("_id", DESCENDING)], name="chain_newest")

    async def _last(self, chain: str) -> dict[str, Any] | None:
        found = await self.entries.find({"chain": chain}).sort("seq", DESCENDING).limit(1).to_list()
        return found[0] if found else None

    async def append(self, entry: dict[str, Any]) -> bool:
        """Record ``entry`` at the end of its chain; False if this event is already in that chain."""
        chain = entry["chain"]
        for _ in range(ATTEMPTS):
            if await self.entries.find_one({"event_id": entry["event_id"], "chain": chain}, {"_id": 1}):
                return False
            last = await self._last(chain)
            doc = seal({**entry, "_id": new_id()}, seq=(last["seq"] + 1) if last else 1,
                       prev_hash=last["hash"] if last else GENESIS)
            try:
                await self.entries.insert_one(doc)
                return True
            except DuplicateKeyError:
                continue  # the position (or this very event) was taken meanwhile: look again
        raise RuntimeError(f"could not append to chain {chain} after {ATTEMPTS} attempts")

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
                   page: PageQuery) -> list[dict[str, Any]]:
        """Entries of these chains, newest first."""
        query = {**self._query(chains, since, until), **page.id_filter()}
        return await self.entries.find(query).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def all(self, chains: Iterable[str], *, since: datetime | None,
                  until: datetime | None) -> AsyncIterator[dict[str, Any]]:
        async for doc in self.entries.find(self._query(chains, since, until)).sort("_id", DESCENDING):
            yield doc

    async def chain(self, chain: str) -> list[dict[str, Any]]:
        return await self.entries.find({"chain": chain}).sort("seq", ASCENDING).to_list()
