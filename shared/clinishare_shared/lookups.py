"""Lookup documents: sets of values (ids, short entries) per key, read by ``_id``.

FerretDB's SQLite handler serves only a bare ``_id`` equality from an index and scans a whole collection
for anything else, so "which X belong to K" is answered by a lookup document ``<key>`` listing them, then
each X read by ``_id``. A lookup is written BEFORE what it names and cleared after, so it is a superset:
every read checks what it loads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from clinishare_shared.mongo import delete_by_ids, find_by_ids, insert_new, pull_exact


class ChunkedSets:
    """Sets of values, one per key, kept in ``_id``-keyed documents of at most ``chunk`` values each:
    FerretDB rewrites a whole document on every update (measured on 1.24.2: ~1 ms for a few values, ~10 ms
    for 1000 ids, ~80 ms for 400 grant entries), so one ever-growing array would make every write to it
    cost its size. The key's first document ``<key>`` holds the first values and ``more``, the number of
    further documents ``<key>#1`` .. ``<key>#<more>``. A new document is announced in the first (``$max``
    of ``more``) before any value is put in it, so whoever reads ``more`` then finds every value added
    before. Values are added with ``$addToSet`` to the document being filled (so one added again later may
    sit in two: ``members`` lists it once, ``remove`` takes it out of all); ``n`` counts what was added and
    only bounds a document's size (racing writers, or a process that does not know yet that the first is
    full, overfill one a little)."""

    def __init__(self, coll: Any, field: str, *, chunk: int) -> None:
        self.coll, self.field, self.chunk = coll, field, chunk
        self._last: dict[str, int] = {}  # key -> the document this process appends to (announced)

    async def _update(self, doc_id: str, update: dict[str, Any]) -> None:
        try:
            await self.coll.update_one({"_id": doc_id}, update, upsert=True)
        except DuplicateKeyError:  # a racing upsert created the document first: it exists now
            await self.coll.update_one({"_id": doc_id}, update)

    async def _documents(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        heads = await find_by_ids(self.coll, keys)
        more = [f"{h['_id']}#{k}" for h in heads for k in range(1, h.get("more", 0) + 1)]
        return heads + (await find_by_ids(self.coll, more) if more else [])

    async def members(self, keys: Iterable[str]) -> dict[str, list[Any]]:
        """key -> its values, each once (a value added again after its document filled up sits in two);
        keys with none are left out."""
        found: dict[str, dict[Any, Any]] = defaultdict(dict)
        for doc in await self._documents(keys):
            values = found[doc["_id"].partition("#")[0]]
            for v in doc.get(self.field, ()):
                values.setdefault(tuple(v.items()) if isinstance(v, dict) else v, v)
        return {k: list(v.values()) for k, v in found.items() if v}

    async def add(self, key: str, *values: Any, new: bool = False) -> None:
        """Append to the document this process last wrote for the key (the first one when it does not
        know): one write, which answers how full it is now; a full one makes the next one announced (in the
        first document, before anything goes into it) and used from then on. Whatever document is written
        is already announced, so readers find the values.

        ``new``: the caller expects the key to have no values yet (a grant just made). Its first document
        is then written by an insert, which on every engine costs less than the find-and-modify of an
        append (no read first, nothing read back, no lock on FerretDB); if the document exists after all,
        the insert fails and the values are appended as usual."""
        todo = list(values)
        if new and todo and len(todo) < self.chunk and key not in self._last:
            first = [v for i, v in enumerate(todo) if v not in todo[:i]]  # as $addToSet would keep them
            if await insert_new(self.coll, {"_id": key, self.field: first, "n": len(todo)}):
                return
        while todo:
            k = self._last.get(key, 0)
            part, todo = todo[:self.chunk], todo[self.chunk:]
            doc = await self._append(key if k == 0 else f"{key}#{k}", part)
            # the first document tells how far others went on; a full one with nothing after it: announce one
            after = max(k, doc.get("more", 0)) if k == 0 else k
            if after == k and doc.get("n", 0) >= self.chunk:
                await self._update(key, {"$max": {"more": k + 1}})
                after = k + 1
            if after != k:
                self._remember(key, after)

    async def _append(self, doc_id: str, part: list[Any]) -> dict[str, Any]:
        update = {"$addToSet": {self.field: {"$each": part}}, "$inc": {"n": len(part)}}
        try:
            doc = await self.coll.find_one_and_update({"_id": doc_id}, update, upsert=True,
                                                      return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # a racing upsert created the document first: it exists now
            doc = await self.coll.find_one_and_update({"_id": doc_id}, update, return_document=ReturnDocument.AFTER)
        return doc or {}

    def _remember(self, key: str, k: int) -> None:
        if len(self._last) >= 10_000:  # a bound, not a cache policy: forgetting only costs one extra write
            self._last.clear()
        self._last[key] = k

    async def drop(self, keys: Iterable[str]) -> None:
        """Delete these keys' sets: every document of each (``delete_by_ids``)."""
        keys = list(keys)
        for key in keys:
            self._last.pop(key, None)
        if keys:
            await delete_by_ids(self.coll, [d["_id"] for d in await self._documents(keys)])

    async def remove(self, key: str, *values: Any) -> None:
        """Take ``values`` out of the key's set, wherever they are (``pull_exact`` of the stored elements)."""
        for doc in await self._documents([key]):
            present = [v for v in doc.get(self.field, ()) if v in values]
            if present:
                await self.coll.update_one({"_id": doc["_id"]}, pull_exact(self.field, *present))
