"""MongoDB access: PyMongo's AsyncMongoClient (MongoDB, or FerretDB locally), or an in-process fallback.

Store code is written once against the PyMongo async API (``find`` returns a cursor, ``to_list``,
``aggregate`` is awaited, ...). The real engines are MongoDB and, where no MongoDB server exists (these
machines, ``make run``, ``make test``), FerretDB on SQLite (``clinishare_shared.ferretdb``). Only when
neither is available do the same calls go to mongomock through the thin adapter below; it yields to the
event loop on every call and round-trips written documents through BSON with production's codec options,
so that code run on it meets the interleavings and the value conversions a real server gives.

FerretDB 1.24 lacks a few MongoDB features we would use; the shims here keep the MongoDB idiom where the
server has it and fall back to the smallest equivalent where it does not (docs/ARCHITECTURE.md lists them):
- TTL indexes: ``ensure_ttl_index`` asks the server for one; if refused, ``purge_expired`` (run by every
  service's ``Infra`` on a timer, like MongoDB's TTL monitor) deletes what the index would have.
- ``$pull`` with a condition removes nothing on FerretDB: ``pull_exact`` removes array elements by their
  exact stored value, which both engines do the same way.
- An update that makes a unique field collide is an InternalError on FerretDB: ``AtomicWritesCollection``
  raises ``DuplicateKeyError`` for it, as MongoDB does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy as _copy_module
import fcntl
import itertools
import os
import re
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import structlog
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.tz_util import utc as bson_utc
from pymongo import AsyncMongoClient, DeleteOne, UpdateOne
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.results import DeleteResult, UpdateResult

log = structlog.get_logger("clinishare.mongo")

IN_PROCESS = "inprocess"


def now_ms() -> datetime:
    """Now (UTC) at the millisecond precision MongoDB stores, so what a write returns equals what a
    later read returns."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """A string id that sorts by creation time (an ObjectId's hex), so newest-first is an index order."""
    return str(ObjectId())


# what production's clients decode with (open_client): aware datetimes, standard UUIDs
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, uuid_representation=4)


# what a server keeps, and mongomock stores: dates as naive UTC (a read makes them aware again, as above)
_STORED_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=False, uuid_representation=4)


def bson_roundtrip(value: Any) -> Any:
    """``value`` as a server would store it: datetimes in UTC truncated to milliseconds (naive, as mongomock
    keeps them: aware ones, in bson's pure-Python UTC, cost its store a conversion each), tuples as lists,
    and anything BSON cannot encode refused here as it would be by a real server."""
    if isinstance(value, dict):
        return bson.decode(bson.encode(value, codec_options=CODEC_OPTIONS), codec_options=_STORED_OPTIONS)
    if isinstance(value, list):
        return [bson_roundtrip(v) for v in value]
    return value


class InProcessCursor:
    """What a read on the in-process engine hands out, as PyMongo's cursors do (``to_list``, ``async
    for``), yielding to the event loop on each call; ``results`` are given (``aggregate``) or computed at
    the first read (``_compute``: ``InProcessFind``)."""

    def __init__(self, results: list[dict[str, Any]] | None = None) -> None:
        self._results = results
        self._emitted = 0

    def _compute(self) -> list[dict[str, Any]]:
        return []

    def _all(self) -> list[dict[str, Any]]:
        if self._results is None:
            self._results = self._compute()
        return self._results

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        rest = self._all()[self._emitted:]
        out = rest if length is None else rest[:length]
        self._emitted += len(out)
        return out

    def __aiter__(self) -> "InProcessCursor":
        return self

    async def __anext__(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        results = self._all()
        if self._emitted >= len(results):
            raise StopAsyncIteration
        self._emitted += 1
        return results[self._emitted - 1]

    async def close(self) -> None:
        return None


# the positional argument (after the filter, for updates) that a server would receive as BSON
_WRITTEN_ARG = {"insert_one": 0, "insert_many": 0, "replace_one": 1, "update_one": 1, "update_many": 1,
                "find_one_and_update": 1, "find_one_and_replace": 1}

_ASYNC_PASSTHROUGH = (
    "insert_one", "insert_many", "update_one", "update_many", "replace_one",
    "delete_one", "delete_many", "find_one_and_update", "find_one_and_delete",
    "find_one_and_replace", "count_documents", "distinct", "drop", "bulk_write",
    "drop_index", "index_information", "find_one_and_delete",
)


def _id_keys(filter: Any) -> list[Any] | None:
    """The ``_id``s a filter can match, each once: ``{"_id": x, ...}`` (a string or an ObjectId; whatever
    else the filter says is checked on that one document, as a server's ``_id`` index serves it) or exactly
    ``{"_id": {"$in": [x, ...]}}``; None for any other filter."""
    if not isinstance(filter, dict) or "_id" not in filter:
        return None
    value = filter["_id"]
    if isinstance(value, (str, ObjectId)):
        return [value]
    if len(filter) == 1 and isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$in"), (list, tuple)) \
            and all(isinstance(v, (str, ObjectId)) for v in value["$in"]):
        return list(dict.fromkeys(value["$in"]))
    return None


def _by_id(collection: Any) -> None:
    """Give a mongomock collection the primary-key lookup every server has: a filter that names one ``_id``
    (``{"_id": x}``, ``{"_id": x, "version": 3}``) or is exactly ``{"_id": {"$in": [...]}}`` reads those
    documents from the store (a dict keyed by ``_id``) instead of testing every document. The whole filter
    is still applied to the one document, so the answer is the same."""
    from mongomock.filtering import filter_applies

    scan = collection._iter_documents

    def iter_documents(filter: Any) -> Any:
        keys = _id_keys(filter)
        if keys is None:
            return scan(filter)
        store = collection._store
        # the store's own dict, read without the lock and expiry pass each of its reads takes: nothing here
        # expires (create_index refuses TTL indexes) and every call runs on the one event loop
        docs = store._documents if not store._ttl_indexes else {k: store[k] for k in keys if k in store}
        if len(keys) > 1:  # {"_id": {"$in": keys}} of strings or ObjectIds: being stored under a key is a match
            return iter([docs[k] for k in keys if k in docs])
        return iter([docs[k] for k in keys if k in docs and filter_applies(filter, docs[k])])

    collection._iter_documents = iter_documents


_SCALAR_KEYS = (str, int, ObjectId, type(None))  # bool is an int in Python, not in BSON: not here
_COMPLEX = object()


def _unique_keys(collection: Any) -> None:
    """Give a mongomock collection what a server's unique index does: look the new key up. mongomock
    checks a unique index by testing every document of the collection on every insert and every update
    that changes a document, so an append-only collection (audit's entries, notify's processed ids) costs
    more with each write. Here each unique index keeps a map from its key to the ``_id`` of the documents
    that held it when they were last written; a candidate is checked against the document as it is now
    (a deleted or changed one no longer counts, so deletes need no hook), and the index is built from
    the documents once, again whenever it is dropped and created anew. Where the answer could differ from
    mongomock's (an array or any value other than a string, integer, ObjectId or null in a key, a partial
    index, an ``_id`` that is not a plain value), mongomock's own check runs instead."""
    from mongomock import helpers

    original = collection._ensure_uniques

    def key_of(doc: Mapping[str, Any], fields: Sequence[str]) -> Any:
        values = []
        for field in fields:
            try:
                value = helpers.get_value_by_dot(doc, field)
            except KeyError:
                value = None
            if isinstance(value, bool) or not isinstance(value, _SCALAR_KEYS):
                return _COMPLEX
            values.append(value)
        return tuple(values)

    def ensure_uniques(new_data: dict[str, Any]) -> None:
        store = collection._store
        doc_id = new_data.get("_id")
        indexes = [(name, index) for name, index in store.indexes.items() if index.get("unique")]
        if not indexes:
            return
        if not isinstance(doc_id, (str, int, ObjectId)) or isinstance(doc_id, bool) \
                or any(index.get("partialFilterExpression") is not None for _, index in indexes):
            return original(new_data)
        built: dict[str, tuple[Any, dict[Any, set[Any]] | None]] = store.__dict__.setdefault("_clinishare_unique", {})
        checks = []
        for name, index in indexes:
            fields = [key for key, _ in index["key"]]
            entry = built.get(name)
            if entry is None or entry[0] is not index:  # new, or dropped and created again: build it
                keys: dict[Any, set[Any]] | None = {}
                for doc in store.documents:
                    k = key_of(doc, fields)
                    if k is _COMPLEX or not isinstance(doc.get("_id"), (str, int, ObjectId)):
                        keys = None
                        break
                    keys.setdefault(k, set()).add(doc["_id"])
                built[name] = entry = (index, keys)
            key = key_of(new_data, fields)
            if entry[1] is None or key is _COMPLEX:
                built[name] = (index, None)  # for good: mongomock's check from now on
                return original(new_data)
            checks.append((entry[1], fields, key, index.get("sparse") and all(v is None for v in key)))
        for keys, fields, key, skipped in checks:
            if skipped:  # a sparse index holds no entry for a document without its fields
                continue
            holders = keys.get(key, set())
            for other in list(holders):
                if other == doc_id:
                    continue
                try:
                    current = store[other]
                except KeyError:
                    current = None
                if current is None or key_of(current, fields) != key:
                    holders.discard(other)  # deleted, or changed since
                else:
                    raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
        for keys, _, key, skipped in checks:
            if not skipped:
                keys.setdefault(key, set()).add(doc_id)

    collection._ensure_uniques = ensure_uniques


# values a read hands back as they are stored: immutable, so no copy is needed (exact types only)
_AS_STORED = frozenset({str, int, float, bool, type(None), ObjectId, bytes})


def _read_copy(value: Any, aware: bool) -> Any:
    """What mongomock's cursor returns for a stored value, in one pass instead of its two (a copy of every
    field, then a second copy that makes dates aware): dicts and lists copied, immutable values shared,
    dates made aware; any other type goes through mongomock's own two steps. mongomock stores a document's
    embedded documents as OrderedDicts; its copy reads them back as plain dicts, and so does this."""
    kind = type(value)
    if kind is dict or kind is OrderedDict:
        return {k: _read_copy(v, aware) for k, v in value.items()}
    if kind is list:
        return [_read_copy(v, aware) for v in value]
    if kind in _AS_STORED:
        return value
    if kind is datetime:
        return value.replace(tzinfo=bson_utc) if aware else value  # mongomock's utc is bson's, as PyMongo's
    from mongomock import helpers
    from mongomock.collection import _copy_field

    copied = _copy_field(value, dict)
    return helpers.make_datetime_timezone_aware_in_document(copied) if aware else copied


def _projector(projection: Any, aware: bool) -> Any:
    """A function that copies a stored document as mongomock's ``find`` would with this projection (None or
    empty: all of it; top-level fields all included or all excluded, ``_id`` either way), or None for a
    projection it does not cover (dotted paths, operators, mixed modes, lists): mongomock then reads."""
    if not projection:  # None, {} or []: all of it, as PyMongo 4 (and mongomock) read an empty projection
        return lambda doc: _read_copy(doc, aware)
    if not isinstance(projection, Mapping):
        return None
    fields = {k: v for k, v in projection.items() if k != "_id"}
    keep_id = projection.get("_id", 1)
    flags = list(fields.values()) + [keep_id]
    if any(type(v) not in (int, bool) or v not in (0, 1) for v in flags) \
            or any("." in k or k.startswith("$") for k in fields) or len(set(fields.values())) > 1:
        return None
    keep_id = keep_id != 0
    if not fields:  # only _id named: {"_id": 1} is _id alone, {"_id": 0} everything but it
        include: bool | None = True if keep_id else None
    else:
        include = bool(next(iter(fields.values())))
    names = frozenset(fields)

    def project(doc: Mapping[str, Any]) -> dict[str, Any]:
        if include is None:
            out = {k: _read_copy(v, aware) for k, v in doc.items()}
        elif include:
            out = {k: _read_copy(v, aware) for k, v in doc.items() if k in names}
        else:
            out = {k: _read_copy(v, aware) for k, v in doc.items() if k not in names}
        if not keep_id:
            out.pop("_id", None)
        elif "_id" in doc:
            out["_id"] = doc["_id"]  # where mongomock puts it: last when fields are included
        return out

    return project


def _rebuilt(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """``value`` with its dicts, OrderedDicts and lists rebuilt, of the same types, and every other value
    given to ``leaf``: the walk of mongomock's copies, dispatched on the exact type once per value."""
    kind = type(value)
    if kind is dict:
        return {k: _rebuilt(v, leaf) for k, v in value.items()}
    if kind is OrderedDict:
        return OrderedDict([(k, _rebuilt(v, leaf)) for k, v in value.items()])
    if kind is list:
        return [_rebuilt(v, leaf) for v in value]
    return leaf(value)


def _copied(value: Any) -> Any:
    return value if type(value) in _AS_STORED or type(value) is datetime else _copy_module.deepcopy(value)


def _stored_copy(value: Any) -> Any:
    """``copy.deepcopy`` of a stored value, for the BSON types a store holds: containers rebuilt, immutable
    values shared, anything else through ``copy.deepcopy``. Equal, and of the same types, without deepcopy's
    memo and dispatch on every value."""
    return _rebuilt(value, _copied)


class _StoredCopy:
    """Stands in for the ``copy`` module inside ``mongomock.collection``, whose every update deep-copies the
    whole document first (to tell whether it changed, and to roll back): ``deepcopy`` is ``_stored_copy``."""

    copy = staticmethod(_copy_module.copy)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return _copy_module.deepcopy(value, memo) if memo is not None else _stored_copy(value)


_MONGOMOCK_OWN: dict[str, Any] = {}  # what _speed_up_mongomock replaced (its tests compare against them)


def _speed_up_mongomock() -> None:
    """The in-process engine's writes, made cheaper where mongomock spends most of them, with the same
    results: the snapshot every update takes (``_StoredCopy``), and the walk that stores dates naive and to
    the millisecond, which rebuilt every value of a written document and of each update's filter and
    operators (now: containers rebuilt, immutable values kept, dates and anything else as mongomock does).
    Installed once per process, for every mongomock collection."""
    if _MONGOMOCK_OWN:
        return
    from mongomock import collection as mongomock_collection, helpers

    patch_dates = _MONGOMOCK_OWN["patch_datetime_awareness_in_document"] = helpers.patch_datetime_awareness_in_document
    _MONGOMOCK_OWN["copy"] = mongomock_collection.copy

    def leaf(value: Any) -> Any:  # dates, timestamps, tuples and other types: mongomock's own
        return value if type(value) in _AS_STORED else patch_dates(value)

    def patch_datetime_awareness_in_document(value: Any) -> Any:
        return _rebuilt(value, leaf)

    helpers.patch_datetime_awareness_in_document = patch_datetime_awareness_in_document
    mongomock_collection.copy = _StoredCopy


def _reads_in_one_pass(collection: Any) -> None:
    """The collection's ``find_one`` reads through ``InProcessFind`` (one pass, only what it returns), for the
    engine's own ``find_one`` and for mongomock's ``find_one_and_update`` (and replace, delete), which reads
    the document before the write, and again after it for ``ReturnDocument.AFTER``, each through mongomock's
    cursor (two copies of the whole document each). A sort or other option goes to mongomock's own."""
    original = collection.find_one

    def find_one(filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        if len(args) > 1 or (args and "projection" in kwargs) or set(kwargs) - {"projection", "sort"} \
                or kwargs.get("sort"):
            return original(filter, *args, **kwargs)
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}
        return InProcessFind(collection, filter, args[0] if args else kwargs.get("projection")).first()

    collection.find_one = find_one


def _deletes_uncopied(collection: Any) -> None:
    """mongomock's deletes read every matching document through its cursor (two copies of each) only to
    take their ``_id``s. Here the stored documents the filter matches are found as ``InProcessFind`` finds
    them, uncopied; a filter it does not cover, or an option, goes to mongomock's own delete."""
    from mongomock import helpers

    original = collection._delete

    def delete(filter: Any, collation: Any = None, hint: Any = None, multi: bool = False, session: Any = None) -> Any:
        if collation or hint or session:
            return original(filter, collation=collation, hint=hint, multi=multi, session=session)
        spec = {} if filter is None else filter if isinstance(filter, Mapping) else {"_id": filter}
        try:
            matched = list(InProcessFind(collection, spec)._documents())
        except LookupError:
            return original(filter, collation=collation, hint=hint, multi=multi, session=session)
        deleted = 0
        for doc in matched:
            doc_id = doc["_id"]
            del collection._store[helpers.hashdict(doc_id) if isinstance(doc_id, dict) else doc_id]
            deleted += 1
            if not multi:
                break
        return {"connectionId": collection.database.client._id, "n": deleted, "ok": 1.0, "err": None}

    collection._delete = delete


class InProcessFind(InProcessCursor):
    """``find`` on the in-process engine: mongomock's filter (with the ``_id`` look-up of ``_by_id``), sort,
    skip and limit, but only the documents returned are copied, each in one pass. mongomock's cursor
    copies every match twice before it skips and limits, so a ``find(...).sort(...).limit(n)`` over a large
    collection, or a ``find_one`` that many documents match, copied them all. A projection or filter this
    does not cover is read by mongomock's cursor, as before."""

    def __init__(self, collection: Any, filter: Any = None, projection: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self._c, self._filter, self._projection, self._kwargs = collection, filter, projection, kwargs
        self._sort: list[tuple[str, Any]] | None = None
        self._skip, self._limit = 0, 0

    def sort(self, key_or_list: Any, direction: Any = None) -> "InProcessFind":
        from mongomock import helpers

        self._sort = helpers.create_index_list(key_or_list, direction)
        return self

    def limit(self, n: int) -> "InProcessFind":
        self._limit = n
        return self

    def skip(self, n: int) -> "InProcessFind":
        self._skip = n
        return self

    def _documents(self) -> Iterator[dict[str, Any]]:
        """The stored documents this find returns, in order, uncopied; raises LookupError where it does not
        cover the query (mongomock's cursor then reads)."""
        from mongomock import filtering, helpers

        spec = {} if self._filter is None else self._filter
        if self._kwargs or not isinstance(spec, Mapping):
            raise LookupError
        spec = helpers.patch_datetime_awareness_in_document(spec)  # as mongomock's cursor: dates stored naive
        dataset: Iterator[dict[str, Any]] = self._c._iter_documents(spec)
        for key, direction in reversed(self._sort or []):  # as mongomock's Collection._get_dataset sorts
            if key == "$natural":
                if direction < 0:
                    dataset = iter(reversed(list(dataset)))
                continue
            if key.startswith("$"):
                raise LookupError
            dataset = iter(sorted(dataset, key=lambda d, k=key: filtering.resolve_sort_key(k, d), reverse=direction < 0))
        if self._skip:
            dataset = itertools.islice(dataset, self._skip, None)
        if self._limit:
            dataset = itertools.islice(dataset, abs(self._limit))
        return dataset

    def _run(self, first_only: bool = False) -> list[dict[str, Any]]:
        project = _projector(self._projection, bool(self._c.codec_options.tz_aware))
        try:
            if project is None:
                raise LookupError
            dataset = self._documents()
        except LookupError:
            cursor = self._c.find(self._filter, self._projection, **self._kwargs)
            if self._sort:
                cursor = cursor.sort(self._sort)
            cursor = cursor.skip(self._skip).limit(self._limit)
            return list(itertools.islice(cursor, 1)) if first_only else list(cursor)
        if first_only:
            dataset = itertools.islice(dataset, 1)
        return [project(doc) for doc in dataset]

    def _compute(self) -> list[dict[str, Any]]:
        return self._run()

    def first(self) -> dict[str, Any] | None:
        found = self._run(first_only=True)
        return found[0] if found else None


class InProcessCollection:
    def __init__(self, collection: Any) -> None:
        self._c = collection
        self.name = collection.name
        self.database = collection.database
        _by_id(collection)
        _unique_keys(collection)
        _reads_in_one_pass(collection)
        _deletes_uncopied(collection)

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        await asyncio.sleep(0)
        if "expireAfterSeconds" in kwargs:
            # mongomock would accept it and never delete anything: refuse it as FerretDB does, so the
            # purge that stands in for it runs here too
            raise OperationFailure('Index option "expireAfterSeconds" is not implemented yet', code=_NOT_IMPLEMENTED)
        return str(self._c.create_index(keys, **kwargs))

    def find(self, *args: Any, **kwargs: Any) -> InProcessFind:
        return InProcessFind(self._c, *args, **kwargs)

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # as every call here: a round trip's yield before and after
        found = self._c.find_one(filter, *args, **kwargs)  # InProcessFind's one-pass read (_reads_in_one_pass)
        await asyncio.sleep(0)
        return found

    async def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> InProcessCursor:
        await asyncio.sleep(0)
        return InProcessCursor(list(self._c.aggregate(pipeline, **kwargs)))

    def __getattr__(self, name: str) -> Any:
        if name not in _ASYNC_PASSTHROUGH:
            raise AttributeError(f"in-process engine does not adapt Collection.{name}")
        fn = getattr(self._c, name)
        written = _WRITTEN_ARG.get(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            # Yield as a network round trip would, so concurrent coroutines interleave here as they do
            # against a server (a read-then-write race shows up instead of hiding).
            await asyncio.sleep(0)
            if written is not None and len(args) > written:
                args = (*args[:written], bson_roundtrip(args[written]), *args[written + 1:])
            result = fn(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return call


class InProcessDatabase:
    def __init__(self, db: Any) -> None:
        self._db = db
        self.name = db.name
        self._collections: dict[str, InProcessCollection] = {}

    def get_collection(self, name: str) -> InProcessCollection:
        if name not in self._collections:
            self._collections[name] = InProcessCollection(self._db.get_collection(name))
        return self._collections[name]

    __getitem__ = get_collection

    def __getattr__(self, name: str) -> InProcessCollection:
        # PyMongo allows ``db.charts`` as well as ``db["charts"]``
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get_collection(name)

    async def drop_collection(self, name: str) -> None:
        await asyncio.sleep(0)
        self._db.drop_collection(name)
        self._collections.pop(name, None)

    async def command(self, command: str | dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        if command in ("ping", {"ping": 1}):
            return {"ok": 1.0}
        raise NotImplementedError(f"in-process engine: command {command!r}")

    async def list_collection_names(self) -> list[str]:
        return self._db.list_collection_names()


class InProcessMongoClient:
    """mongomock behind the async interface of AsyncMongoClient (the subset our stores use)."""

    engine = "in-process fallback (mongomock; data lost at exit)"

    def __init__(self) -> None:
        # the embedded engine is an optional extra (clinishare-shared[embedded]): production images lack it
        import mongomock

        _speed_up_mongomock()
        self._client = mongomock.MongoClient(tz_aware=True)
        self._dbs: dict[str, InProcessDatabase] = {}
        self.admin = self.get_database("admin")

    def get_database(self, name: str) -> InProcessDatabase:
        if name not in self._dbs:
            self._dbs[name] = InProcessDatabase(self._client.get_database(name))
        return self._dbs[name]

    __getitem__ = get_database

    def __getattr__(self, name: str) -> InProcessDatabase:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get_database(name)

    async def drop_database(self, name: str) -> None:
        self._client.drop_database(name)
        self._dbs.pop(name, None)

    async def close(self) -> None:
        return None


def open_client(url: str | None) -> Any:
    """A client for ``url``; None or ``inprocess`` gives the in-process engine. Against FerretDB, conditional
    writes are made atomic by ``AtomicWritesClient`` (see there)."""
    if not url or url == IN_PROCESS:
        return InProcessMongoClient()
    from clinishare_shared import querystats

    client: Any = AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, uuidRepresentation="standard",
                                   event_listeners=querystats.listeners())
    return AtomicWritesClient(client, url)


# ---- FerretDB: single-document writes that are atomic ------------------------------------------------
#
# MongoDB applies a single-document update atomically: `update_one({"_id": x, "v": 1}, {"$set": {"v": 2}})`
# is a compare-and-set, `$inc` never loses a count, and every optimistic-concurrency loop, claim and
# throttle here relies on that. FerretDB 1.24 (internal/handler/msg_update.go) reads the matching documents
# and then writes them back by `_id` in a separate SQLite transaction, so two concurrent conditional updates
# can both match and both write (measured: 20 concurrent `$inc`s left 3 to 8; a compare-and-set had up to 19
# winners). Inserts are atomic there (SQLite's primary key and unique indexes). So against FerretDB every
# write that reads before it writes (updates, replaces, deletes, find-and-modify) holds a lock for its
# collection: an asyncio lock within the process and an advisory file lock across the processes of this
# machine (replicas, e2e processes), which is where FerretDB runs. Against MongoDB nothing is locked.

_READ_MODIFY_WRITE = frozenset({
    "update_one", "update_many", "replace_one", "delete_one", "delete_many", "find_one_and_update",
    "find_one_and_replace", "find_one_and_delete", "bulk_write",
})


class _CollectionLock:
    """The per-collection lock: an asyncio lock, then ``flock`` on a file kept open for the process's life
    (opening and closing it on every write cost two system calls more per write)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = asyncio.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own (flock is per open file)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextlib.asynccontextmanager
    async def hold(self) -> Any:
        async with self.local:
            fd = self._file()
            delay = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(delay)  # another process holds it: never block the event loop
                    delay = min(delay * 2, 0.01)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):  # closed at shutdown: closing released it
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class AtomicWritesClient:
    """``AsyncMongoClient`` as it is, except that against FerretDB read-modify-write calls are serialized
    per collection (above). Whether the server is FerretDB is asked once (``buildInfo``)."""

    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._lock_dir = os.path.join(tempfile.gettempdir(), "clinishare-ferretdb-locks",
                                      re.sub(r"[^A-Za-z0-9_.-]", "_", url.split("@")[-1]))
        self._is_ferretdb: bool | None = None
        self._locks: dict[str, _CollectionLock] = {}

    async def needs_locks(self) -> bool:
        if self._is_ferretdb is None:
            info = await self._client.admin.command("buildInfo")
            self._is_ferretdb = "ferretdbVersion" in info
            if self._is_ferretdb:
                os.makedirs(self._lock_dir, exist_ok=True)
        return self._is_ferretdb

    def lock_for(self, db: str, coll: str) -> _CollectionLock:
        key = f"{db}.{coll}"
        if key not in self._locks:
            self._locks[key] = _CollectionLock(os.path.join(self._lock_dir, f"{key}.lock"))
        return self._locks[key]

    def get_database(self, name: str, **kwargs: Any) -> "AtomicWritesDatabase":
        return AtomicWritesDatabase(self, self._client.get_database(name, **kwargs))

    async def close(self) -> None:
        from clinishare_shared import querystats

        for lock in self._locks.values():
            lock.close()
        await self._client.close()
        querystats.flush()

    __getitem__ = get_database

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)  # admin, close, drop_database, address, ...


class AtomicWritesDatabase:
    def __init__(self, owner: AtomicWritesClient, db: Any) -> None:
        self._owner = owner
        self._db = db
        self.name = db.name

    def get_collection(self, name: str, **kwargs: Any) -> "AtomicWritesCollection":
        return AtomicWritesCollection(self._owner, self._db.get_collection(name, **kwargs))

    __getitem__ = get_collection

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("command", "list_collection_names", "drop_collection", "client",
                                            "create_collection", "list_collections", "codec_options"):
            return getattr(self._db, name)
        return self.get_collection(name)  # db.charts, as PyMongo allows


# the single-document writes that ``AtomicWritesCollection`` serves by bare ``_id`` when their filter is
# ``{"_id": x, <equalities>}``: what each answers when the document does not match
_BY_ID_WRITES: dict[str, Callable[[], Any]] = {
    "update_one": lambda: UpdateResult({"n": 0, "nModified": 0, "ok": 1.0}, True),
    "replace_one": lambda: UpdateResult({"n": 0, "nModified": 0, "ok": 1.0}, True),
    "delete_one": lambda: DeleteResult({"n": 0, "ok": 1.0}, True),
    "find_one_and_update": lambda: None,
    "find_one_and_replace": lambda: None,
    "find_one_and_delete": lambda: None,
}
# options a write served by bare _id may carry (an upsert, a sort, a hint ... keep the server's own answer)
_BY_ID_OPTIONS = frozenset({"projection", "return_document"})


def _id_and_conditions(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """``(x, the rest)`` for a write of ``_BY_ID_WRITES`` whose filter is ``{"_id": x, ...}`` with ``x`` a
    string or an ObjectId and at least one other field, called with no option but ``_BY_ID_OPTIONS``; else
    None. The filter is the first argument; an update or replacement, the second, for those that take one."""
    takes = 1 if name in ("delete_one", "find_one_and_delete") else 2
    if len(args) != takes or set(kwargs) - _BY_ID_OPTIONS:
        return None
    spec = args[0]
    if type(spec) is not dict or len(spec) < 2 or type(spec.get("_id")) not in (str, ObjectId):
        return None
    return spec["_id"], {k: v for k, v in spec.items() if k != "_id"}


_EQUAL_TYPES = (str, ObjectId, bool, int, float, type(None), datetime)


def _stored_at(doc: Mapping[str, Any], path: str) -> tuple[bool, Any] | None:
    """``(present, value)`` at a dotted ``path`` of ``doc``; None where a query could see several values
    (an array on the way)."""
    value: Any = doc
    for part in path.split("."):
        if type(value) is list:
            return None
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def equal_stored(doc: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool | None:
    """Whether ``doc`` matches ``conditions`` (``field`` or ``dotted.path`` -> a string, number, boolean,
    null, date or ObjectId) as a server's query equality would; None where this cannot tell for certain
    (an operator, an array in the document, a value of another kind), and the server must be asked.
    As a server: a missing field equals null, true is not 1, 1 is 1.0, dates are compared as instants
    to the millisecond (a naive one is UTC)."""
    for path, want in conditions.items():
        if path.startswith("$") or type(want) not in _EQUAL_TYPES:
            return None
        found = _stored_at(doc, path)
        if found is None:
            return None
        present, value = found
        if not present or value is None:
            if want is not None:
                return False
            continue
        if want is None or type(value) is list:
            return None if type(value) is list else False
        if not isinstance(value, _EQUAL_TYPES):  # (an int64 decodes as Int64, an int)
            return None
        if isinstance(value, bool) or isinstance(want, bool):
            if not (isinstance(value, bool) and isinstance(want, bool) and value == want):
                return False
        elif isinstance(value, datetime) or isinstance(want, datetime):
            if not (isinstance(value, datetime) and isinstance(want, datetime) and _instant_ms(value) == _instant_ms(want)):
                return False
        elif isinstance(value, (int, float)) and isinstance(want, (int, float)):
            if value != want:
                return False
        elif type(value) is not type(want) or value != want:
            return False
    return True


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant_ms(at: datetime) -> int:
    """The millisecond a date names, as BSON stores it (a naive date is UTC, as PyMongo encodes it)."""
    return ((at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - _EPOCH) // timedelta(milliseconds=1)


class AtomicWritesCollection:
    """A collection whose read-modify-write calls are locked against FerretDB (above), and whose updates
    that make a unique field collide raise ``DuplicateKeyError`` on every engine: FerretDB 1.24 gives
    11000 for inserts and upserts, but for an update that sets an indexed field to a taken value it
    answers InternalError "UNIQUE constraint failed" (SQLite's words).

    Against FerretDB, a single-document write whose filter is ``{"_id": x, <equalities>}`` (a
    compare-and-set: ``{"_id": id, "version": 3}``, ``{"_id": id, "deleted_at": None}``) is served by bare
    ``_id``: FerretDB's SQLite handler serves only a filter that is exactly ``{"_id": x}`` from its index,
    and scanned the whole collection for every one of these. Holding the collection's lock, which every
    write here that reads before it writes holds, the document is read by ``_id``, the equalities checked
    (``equal_stored``), and the write sent by ``_id`` alone, or answered "matched nothing" without one; no
    locked writer can change the document in between. A filter it cannot judge goes to the server whole."""

    def __init__(self, owner: AtomicWritesClient, coll: Any) -> None:
        self._owner = owner
        self._coll = coll
        self.name = coll.name
        self.database = coll.database

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._coll, name)
        if name not in _READ_MODIFY_WRITE:
            return attr

        async def locked(*args: Any, **kwargs: Any) -> Any:
            with _unique_violations_as_duplicate_keys():
                if not await self._owner.needs_locks():
                    return await attr(*args, **kwargs)
                async with self._owner.lock_for(self._coll.database.name, self.name).hold():
                    by_id = _id_and_conditions(name, args, kwargs) if name in _BY_ID_WRITES else None
                    if by_id is not None:
                        doc_id, conditions = by_id
                        current = await self._coll.find_one({"_id": doc_id})
                        verdict = False if current is None else equal_stored(current, conditions)
                        if verdict is False:
                            return _BY_ID_WRITES[name]()
                        if verdict is True:
                            return await attr({"_id": doc_id}, *args[1:], **kwargs)
                    return await attr(*args, **kwargs)

        return locked


@contextlib.contextmanager
def _unique_violations_as_duplicate_keys() -> Iterator[None]:
    try:
        yield
    except DuplicateKeyError:
        raise
    except OperationFailure as exc:
        if "UNIQUE constraint failed" not in str(exc):
            raise
        raise DuplicateKeyError(str(exc), 11000, exc.details) from exc


def engine_name(client: Any) -> str:
    return getattr(client, "engine", "MongoDB wire protocol (AsyncMongoClient)")


async def server_engine(client: Any) -> str:
    """What is behind ``client``: "FerretDB ...", "MongoDB x.y.z" or the in-process fallback."""
    if isinstance(getattr(client, "engine", None), str):  # the in-process engine, also behind a test wrapper
        return client.engine
    if isinstance(client, AtomicWritesClient):
        client = client._client
    info = await client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        from clinishare_shared.ferretdb import LABEL

        return f"{LABEL}, reporting MongoDB {info.get('version')}"
    return f"MongoDB {info.get('version')}"


# ---- shims for what FerretDB 1.24 lacks -------------------------------------------------------------

def pull_exact(field: str, *elements: Any) -> dict[str, Any]:
    """An update removing ``elements`` from the array ``field`` by their exact stored value (as read from
    the document). MongoDB's ``{"$pull": {field: {"id": x}}}`` matches elements by condition; FerretDB
    1.24 removes only elements equal to the given value, so the condition form removes nothing there.
    ``$pullAll`` with the stored values means the same on both."""
    return {"$pullAll": {field: list(elements)}}


async def insert_new(coll: Any, document: Mapping[str, Any]) -> bool:
    """Insert ``document`` unless a unique index (its ``_id`` or another) already holds its key: False
    then. A unique insert is atomic on every engine, so of any number of racing writers exactly one wins."""
    try:
        await coll.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


# ---- reads and writes of many documents by _id ------------------------------------------------------
#
# MongoDB (and the in-process engine) serve ``{"_id": {"$in": ids}}`` from the ``_id`` index: one round
# trip for any number of ids. FerretDB's SQLite handler serves nothing but a bare ``_id`` equality from an
# index; ``$in`` on ``_id`` (even of one id) reads the whole collection there (measured at 2·10⁴ documents,
# 25 ids: 16 ms for 25 bare look-ups against 990 ms for one ``$in``). So the MongoDB idiom is kept, and on
# FerretDB each id is its own bare look-up.

ID_SET_BATCH = 1000  # ids per ``$in`` query: far below MongoDB's 16 MB command limit for any id we write
_id_sets_scan: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()  # client -> scans?


def _in_process(coll: Any) -> bool:
    """Whether ``coll`` is the in-process engine's (also under a wrapper that hands on ``database``)."""
    return isinstance(coll, InProcessCollection) or not isinstance(
        getattr(coll.database, "client", None), AsyncMongoClient)


async def scans_id_sets(coll: Any) -> bool:
    """Whether the server behind ``coll`` reads the whole collection for ``{"_id": {"$in": ...}}``
    (FerretDB's SQLite handler); asked once per client (``buildInfo``)."""
    if _in_process(coll):
        return False
    if isinstance(coll, AtomicWritesCollection):
        return await coll._owner.needs_locks()
    client = coll.database.client
    if client not in _id_sets_scan:
        _id_sets_scan[client] = "ferretdbVersion" in await client.admin.command("buildInfo")
    return _id_sets_scan[client]


_SCALARS = (str, int, float, bool, type(None))


def matches(doc: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """Whether ``doc``'s top-level fields equal ``where``'s scalar values, as a query's equality would match
    them (a missing field equals None). For a field that holds a scalar: a query matches an array element
    too, so use it only on fields written as scalars."""
    for key, value in where.items():
        if "." in key or key.startswith("$") or not isinstance(value, _SCALARS):
            raise ValueError(f"matches: top-level scalar equality only, not {key!r}: {value!r}")
    return equal_stored(doc, where) is True  # what it cannot judge (an array, another type) is no match


async def find_by_id(coll: Any, doc_id: Any, projection: Mapping[str, Any] | None = None, *,
                     where: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The document with this ``_id`` if its fields equal ``where`` (``matches``), read by the bare ``_id``
    filter every engine serves from its index: FerretDB's SQLite handler scans the whole collection for a
    filter with any other field, so ``find_one({"_id": x, "owner_id": o})`` scanned it on every call.
    ``projection`` must keep the fields ``where`` names."""
    doc = await coll.find_one({"_id": doc_id}, projection)
    return doc if doc is not None and matches(doc, where or {}) else None


async def find_by_ids(coll: Any, ids: Iterable[Any], projection: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The documents with these ``_id``s that exist, in the order of ``ids`` (repeats read once): one
    ``$in`` query per ``ID_SET_BATCH`` ids where the server serves it from the ``_id`` index, else (FerretDB)
    one bare ``find_one({"_id": x})`` each, all at once. ``projection`` must keep ``_id``."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return []
    if projection is not None and not projection.get("_id", True):
        raise ValueError("find_by_ids needs _id in what it reads")
    if await scans_id_sets(coll):
        found = await asyncio.gather(*(coll.find_one({"_id": i}, projection) for i in unique))
        return [d for d in found if d is not None]
    by_id: dict[Any, dict[str, Any]] = {}
    for start in range(0, len(unique), ID_SET_BATCH):
        for doc in await coll.find({"_id": {"$in": unique[start:start + ID_SET_BATCH]}}, projection).to_list():
            by_id[doc["_id"]] = doc
    return [by_id[i] for i in unique if i in by_id]


async def update_by_ids(coll: Any, ids: Iterable[Any], update: Mapping[str, Any]) -> None:
    """Apply ``update`` to the documents with these ``_id``s: one ``update_many`` with ``$in`` per
    ``ID_SET_BATCH`` ids where the server serves it from the ``_id`` index, else (FerretDB) bulk writes
    whose every statement's filter is a bare ``{"_id": x}`` (``update_each``)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return
    if await scans_id_sets(coll):
        await update_each(coll, [(i, update) for i in unique])
        return
    for start in range(0, len(unique), ID_SET_BATCH):
        await coll.update_many({"_id": {"$in": unique[start:start + ID_SET_BATCH]}}, dict(update))


async def delete_by_ids(coll: Any, ids: Iterable[Any]) -> None:
    """Delete the documents with these ``_id``s: one ``delete_many`` with ``$in`` per ``ID_SET_BATCH`` ids
    where the server serves it from the ``_id`` index; on FerretDB, whose ``$in`` scans the collection,
    bulk writes whose every statement's filter is a bare ``{"_id": x}`` (at most ``BULK_STATEMENTS`` each)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return
    if not await scans_id_sets(coll):
        for start in range(0, len(unique), ID_SET_BATCH):
            await coll.delete_many({"_id": {"$in": unique[start:start + ID_SET_BATCH]}})
        return
    for start in range(0, len(unique), BULK_STATEMENTS):
        await coll.bulk_write([DeleteOne({"_id": i}) for i in unique[start:start + BULK_STATEMENTS]], ordered=False)


# Statements per bulk write. FerretDB 1.24.2 keeps each statement's read cursor (an SQLite connection of
# its pool of 100 per database) open until the whole command ends, so one bulk of more than ~100 updates
# never finishes (measured: 99 statements in 0.15 s, 120 hung), and concurrent smaller ones can exhaust the
# pool together and stall every client of that database. Small bulks, one after another, cannot.
BULK_STATEMENTS = 16


async def update_each(coll: Any, updates: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
    """Apply each ``(id, update)`` to the document with that ``_id``, in bulk writes whose every filter is a
    bare ``{"_id": x}``: of at most ``BULK_STATEMENTS`` statements on FerretDB (below), ``ID_SET_BATCH``
    elsewhere."""
    if _in_process(coll):  # mongomock's bulk_write predates PyMongo 4.20's UpdateOne
        for i, update in updates:
            await coll.update_one({"_id": i}, dict(update))
        return
    size = BULK_STATEMENTS if await scans_id_sets(coll) else ID_SET_BATCH
    for start in range(0, len(updates), size):
        chunk = updates[start:start + size]
        await coll.bulk_write([UpdateOne({"_id": i}, dict(update)) for i, update in chunk], ordered=False)


# (database name, collection name) -> (date field, seconds): TTL indexes the server refused
_purges: dict[tuple[str, str], tuple[str, int]] = {}

_NOT_IMPLEMENTED = 238


async def ensure_ttl_index(coll: Any, field: str, *, expire_after_seconds: int, name: str = "ttl") -> bool:
    """A TTL index on ``field`` (a date): documents are deleted ``expire_after_seconds`` after it. Returns
    True if the server keeps it (MongoDB); False if it refused the option (FerretDB 1.24), in which case
    a plain index is made and ``purge_expired`` deletes with the same rule."""
    try:
        await coll.create_index(field, expireAfterSeconds=expire_after_seconds, name=name)
        return True
    except OperationFailure as exc:
        if exc.code != _NOT_IMPLEMENTED and "expireAfterSeconds" not in str(exc):
            raise
    await coll.create_index(field, name=name)
    _purges[(coll.database.name, coll.name)] = (field, expire_after_seconds)
    log.info("ttl_index_emulated", collection=coll.name, field=field, seconds=expire_after_seconds)
    return False


async def purge_expired(db: Any, *, now: datetime | None = None) -> int:
    """Delete what the refused TTL indexes of ``db`` would have deleted by ``now``; returns how many."""
    now = now or datetime.now(UTC)
    removed = 0
    for (db_name, coll_name), (field, seconds) in list(_purges.items()):
        if db_name == db.name:
            result = await db[coll_name].delete_many({field: {"$lt": now - timedelta(seconds=seconds)}})
            removed += result.deleted_count
    return removed
