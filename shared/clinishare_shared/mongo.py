"""MongoDB access: PyMongo's AsyncMongoClient, or an in-process engine behind the same async interface.

Store code is written once against the PyMongo async API (``find`` returns a cursor, ``to_list``,
``aggregate`` is awaited, ...). When no ``MONGODB_URL`` is given the same calls go to mongomock, an
in-process engine, through the thin adapter below. Only the subset of the API that our stores use is
adapted; anything else raises AttributeError rather than silently behaving differently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

IN_PROCESS = "inprocess"


def now_ms() -> datetime:
    """Now (UTC) at the millisecond precision MongoDB stores, so what a write returns equals what a
    later read returns."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """A string id that sorts by creation time (an ObjectId's hex), so newest-first is an index order."""
    return str(ObjectId())


class InProcessCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> "InProcessCursor":
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def limit(self, n: int) -> "InProcessCursor":
        self._cursor = self._cursor.limit(n)
        return self

    def skip(self, n: int) -> "InProcessCursor":
        self._cursor = self._cursor.skip(n)
        return self

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        out = []
        for doc in self._cursor:
            out.append(doc)
            if length is not None and len(out) >= length:
                break
        return out

    def __aiter__(self) -> "InProcessCursor":
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._cursor)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        return None


_ASYNC_PASSTHROUGH = (
    "insert_one", "insert_many", "find_one", "update_one", "update_many", "replace_one",
    "delete_one", "delete_many", "find_one_and_update", "find_one_and_delete",
    "find_one_and_replace", "count_documents", "distinct", "create_index", "drop", "bulk_write",
    "drop_index", "index_information",
)


class InProcessCollection:
    def __init__(self, collection: Any) -> None:
        self._c = collection
        self.name = collection.name

    def find(self, *args: Any, **kwargs: Any) -> InProcessCursor:
        return InProcessCursor(self._c.find(*args, **kwargs))

    async def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> InProcessCursor:
        return InProcessCursor(iter(list(self._c.aggregate(pipeline, **kwargs))))

    def __getattr__(self, name: str) -> Any:
        if name not in _ASYNC_PASSTHROUGH:
            raise AttributeError(f"in-process engine does not adapt Collection.{name}")
        fn = getattr(self._c, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            # mongomock does not know partial indexes' options everywhere; it ignores what it cannot use.
            return fn(*args, **kwargs)

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

    async def command(self, command: str | dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if command in ("ping", {"ping": 1}):
            return {"ok": 1.0}
        raise NotImplementedError(f"in-process engine: command {command!r}")

    async def list_collection_names(self) -> list[str]:
        return self._db.list_collection_names()


class InProcessMongoClient:
    """mongomock behind the async interface of AsyncMongoClient (the subset our stores use)."""

    engine = "in-process (mongomock)"

    def __init__(self) -> None:
        # the embedded engine is an optional extra (clinishare-shared[embedded]): production images lack it
        import mongomock

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
    """A client for ``url``; None or ``inprocess`` gives the in-process engine."""
    if not url or url == IN_PROCESS:
        return InProcessMongoClient()
    client: Any = AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, uuidRepresentation="standard")
    return client


def engine_name(client: Any) -> str:
    return getattr(client, "engine", "mongodb (AsyncMongoClient)")
