"""Which database commands a process runs, by shape, for finding the queries that scan (``make bench``).

Off unless ``MONGO_QUERY_STATS`` names a directory: then every client ``mongo.open_client`` opens counts
each command by (database, collection, command, filter shape) with its total time, and the process writes
them to ``<dir>/<program>-<pid>.json`` when it closes a client and at exit (uvicorn ends a process on
SIGTERM by re-raising the signal, which skips ``atexit``: the lifespan's close is what writes there). A filter's shape keeps field names and operators and
replaces every value by ``?`` (lists by ``[n]``), so no value, PHI or id, is ever written.
``python -m bench --query-stats`` sets it for the processes it starts and prints the table
(``table``). On FerretDB's SQLite handler only a filter that is exactly ``{"_id": ?}`` is served by an
index (``pushed_down``); every other one reads the whole collection.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pymongo import monitoring

ENV = "MONGO_QUERY_STATS"
_ID_ONLY = json.dumps({"_id": "?"})


def shape(value: Any) -> Any:
    """``value`` with every leaf replaced: field names and operators stay, values become ``?``; a list of
    documents keeps their shapes, any other list becomes ``[n]``."""
    if isinstance(value, dict):
        return {str(k): shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            return [shape(v) for v in value]
        return f"[{len(value)}]"
    return "?"


def _filters(name: str, command: dict[str, Any]) -> list[Any]:
    """The filters a command applies (one per statement of a batched update or delete)."""
    if name in ("find", "count"):
        return [command.get("filter", command.get("query", {}))]
    if name in ("findAndModify", "distinct"):
        return [command.get("query", {})]
    if name == "update":
        return [u.get("q", {}) for u in command.get("updates", [])]
    if name == "delete":
        return [d.get("q", {}) for d in command.get("deletes", [])]
    if name == "aggregate":
        return [next((st["$match"] for st in command.get("pipeline", []) if "$match" in st), {})]
    return [None]


def _key(shape_: Any, command: dict[str, Any], name: str) -> str:
    text = "-" if shape_ is None else json.dumps(shape_, sort_keys=True)
    if name == "find" and command.get("sort"):
        text += " sort " + json.dumps(shape(command["sort"]), sort_keys=True)
    return text


class QueryStats(monitoring.CommandListener):
    """Counts and times commands by shape (see the module's docstring)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str, str], list[float]] = {}
        self._started: dict[tuple[Any, int], list[tuple[str, str, str, str]]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        command = event.command
        coll = command.get(name) if isinstance(command.get(name), str) else command.get("collection", "")
        keys = [(event.database_name, str(coll), name, _key(shape(f) if f is not None else None, command, name))
                for f in _filters(name, command)]
        self._started[(event.connection_id, event.request_id)] = keys

    def _done(self, event: Any, *, left_open: bool = False) -> None:
        keys = self._started.pop((event.connection_id, event.request_id), None)
        if not keys:
            return
        share = event.duration_micros / 1000 / len(keys)
        for key in keys:
            row = self.rows.setdefault(key, [0, 0.0, 0])
            row[0] += 1
            row[1] += share
            row[2] += 1 if left_open else 0

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        # a reply whose cursor id is not 0 left a cursor open on the server (the client must exhaust or kill
        # it; on FerretDB's SQLite handler each one holds one of a database's 100 pooled connections)
        cursor = event.reply.get("cursor") if isinstance(event.reply, dict) else None
        self._done(event, left_open=bool(cursor and cursor.get("id")))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        # counted apart, under "<command> failed <code name>": an error's path can differ on the server
        started = self._started.get((event.connection_id, event.request_id)) or []
        code = event.failure.get("codeName") or event.failure.get("code") if isinstance(event.failure, dict) else None
        self._started[(event.connection_id, event.request_id)] = [
            (db, coll, f"{name} failed {code}", key) for db, coll, name, key in started]
        self._done(event)

    def dump(self, directory: str) -> Path:
        program = Path(sys.argv[0]).parent.name if sys.argv and sys.argv[0].endswith("__main__.py") \
            else Path(sys.argv[0] if sys.argv else "python").stem
        path = Path(directory) / f"{program}-{os.getpid()}.json"
        path.write_text(json.dumps([
            {"program": program, "database": db, "collection": coll, "command": name, "filter": key,
             "pushed_down": name not in ("find", "update", "delete", "findAndModify", "count", "distinct",
                                         "aggregate") or key == _ID_ONLY,
             "count": int(n), "total_ms": round(ms, 3), "cursors_left_open": int(left_open)}
            for (db, coll, name, key), (n, ms, left_open) in self.rows.items()], indent=1))
        return path


_stats: QueryStats | None = None
_directory = ""


def listeners() -> list[monitoring.CommandListener]:
    """[the process's QueryStats] when ``MONGO_QUERY_STATS`` is set (written at exit), else []."""
    global _stats, _directory
    directory = os.environ.get(ENV)
    if not directory:
        return []
    if _stats is None:
        _stats, _directory = QueryStats(), directory
        os.makedirs(directory, exist_ok=True)
        atexit.register(flush)
    return [_stats]


def flush() -> None:
    """Write what was counted so far (no-op when off)."""
    if _stats is not None:
        _stats.dump(_directory)


def load(directory: str | Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("*.json")):
        rows += json.loads(path.read_text())
    return rows


def table(rows: Iterable[dict[str, Any]], *, top: int = 40) -> str:
    """The rows, heaviest total time first: program, collection, command, calls, total and mean time,
    whether FerretDB's SQLite handler serves the filter by the ``_id`` index, and the filter's shape."""
    merged: dict[tuple[str, str, str, str, bool], list[float]] = {}
    for r in rows:
        k = (r["program"], r["collection"], r["command"], r["filter"], r["pushed_down"])
        m = merged.setdefault(k, [0, 0.0, 0])
        m[0] += r["count"]
        m[1] += r["total_ms"]
        m[2] += r.get("cursors_left_open", 0)
    lines = [f"{'process':<20} {'collection':<24} {'command':<13} {'calls':>7} {'total ms':>10} {'mean ms':>8} "
             f"{'open':>5}  id? filter"]
    for (prog, coll, name, key, pushed), (n, ms, left_open) in sorted(merged.items(), key=lambda kv: -kv[1][1])[:top]:
        lines.append(f"{prog[:20]:<20} {coll[:24]:<24} {name:<13} {int(n):>7} {ms:>10.1f} {ms / n:>8.2f} "
                     f"{int(left_open):>5}  {'yes' if pushed else 'NO '} {key[:110]}")
    opened = sorted(((k, int(v[2])) for k, v in merged.items() if v[2]), key=lambda kv: -kv[1])
    if opened:
        lines.append("replies that left a cursor open (exhausted or killed later, or held until then):")
        lines += [f"  {p} {c} {n}: {o} of {int(merged[(p, c, n, f, d)][0])} {f[:100]}" for (p, c, n, f, d), o in opened]
    return "\n".join(lines)
