"""The only module that talks to MongoDB: the disclosure entries, one hash chain per patient (and one
per author for chart grants under rule ``all``).

Appends are serialized per chain without transactions: an entry's position is claimed by inserting it
with a unique ``(chain, seq)``; of two appenders racing for one position exactly one insert succeeds (on
every engine, FerretDB included, where conditional updates are not isolated), the other re-reads the
chain's last entry and tries the next position (``service.append``). A unique ``(event_id, chain)`` makes
recording an event idempotent: a redelivered event, even one delivered to two replicas at once, is
recorded once. audit publishes nothing, so no write stages events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from clinishare_audit.domain.stored import DisclosureDoc
from clinishare_shared.mongo import insert_new
from clinishare_shared.pagination import PageQuery

ENTRIES = "disclosures"


class AuditStore:
    def __init__(self, db: Any) -> None:
        self.db = db
        self.entries = db[ENTRIES]

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("chain", ASCENDING), ("seq", ASCENDING)], unique=True, name="position")
        await self.entries.create_index([("event_id", ASCENDING), ("chain", ASCENDING)], unique=True, name="once")
        await self.entries.create_index([("chain", ASCENDING), ("_id", DESCENDING)], name="chain_newest")

    async def last(self, chain: str) -> DisclosureDoc | None:
        found: list[DisclosureDoc] = await self.entries.find({"chain": chain}).sort("seq", DESCENDING).limit(1).to_list()
        return found[0] if found else None

    async def recorded(self, event_id: str, chain: str) -> bool:
        return await self.entries.find_one({"event_id": event_id, "chain": chain}, {"_id": 1}) is not None

    async def insert(self, entry: DisclosureDoc) -> bool:
        """False when its position (or this event in this chain) was taken meanwhile."""
        return await insert_new(self.entries, entry)

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
