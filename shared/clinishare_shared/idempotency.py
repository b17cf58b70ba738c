"""``Idempotency-Key`` on every ``POST`` that creates (SPEC 10.3), once for every service.

A route "creates" when it is a POST answering 201; for those, a request carrying ``Idempotency-Key`` is
run at most once per caller and key for 24 hours:
- the first arrival claims ``<caller>|<key>`` by inserting it (a unique ``_id``: the one write that is
  atomic on every engine we run on), runs, and stores its answer (any status below 500 except 401 and
  429, which say nothing about the request itself; otherwise the claim is released so a retry runs);
- a later arrival with the same method, path and body gets the stored answer (``Idempotent-Replayed:
  true``) and causes nothing; one arriving while the first still runs waits for its answer;
- the same key with another request is 422.
The caller is the verified token's subject (``anonymous`` without a valid token: there the body itself,
which holds the password, is what a replay must match). Records live in the service's own database,
collection ``idempotency_keys``, and expire after 24 hours (a TTL index, or its emulation on FerretDB).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinishare_shared.mongo import ensure_ttl_index, now_ms
from clinishare_shared.problems import problem_response
from clinishare_shared.protection import header, replaying

COLLECTION = "idempotency_keys"
RETENTION = timedelta(hours=24)
HEADER = b"idempotency-key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as clients send UUIDs or similar
_NOT_STORED = {401, 429}
_KEPT_HEADERS = {b"content-type", b"location", b"etag"}


async def ensure_indexes(db: Any) -> None:
    await ensure_ttl_index(db[COLLECTION], "created_at", expire_after_seconds=int(RETENTION.total_seconds()),
                           name="idempotency_ttl")


def creating_paths(app: Any) -> list[re.Pattern[str]]:
    """The paths whose POST answers 201, read from the app's own OpenAPI document (public, and the very
    contract clients see), as patterns."""
    found = []
    for path, operations in app.openapi().get("paths", {}).items():
        if "201" in operations.get("post", {}).get("responses", {}):
            found.append(re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"))
    return found


def creates(app: Any, scope: Scope) -> bool:
    """Whether the request goes to a POST route answering 201."""
    if scope["method"] != "POST":
        return False
    paths = getattr(app.state, "idempotent_paths", None)
    if paths is None:
        paths = app.state.idempotent_paths = creating_paths(app)
    return any(p.match(scope["path"]) for p in paths)


async def _caller(app: Any, scope: Scope) -> str:
    scheme, _, token = (header(scope, b"authorization") or b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            return (await app.state.verifier.verify(token.strip())).id
        except Exception:
            pass  # the route answers 401 itself (not stored)
    return "anonymous"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, wait_seconds: float = 30.0, poll_seconds: float = 0.05) -> None:
        self.app = app
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, HEADER) if scope["type"] == "http" else None
        service = scope.get("app")
        if key is None or service is None or not creates(service, scope):
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key.decode("latin-1")):
            await problem_response(422, detail="Idempotency-Key must be 1 to 200 visible ASCII characters",
                                   instance=scope["path"])(scope, receive, send)
            return
        body, receive_again = await _read_body(receive)
        if body is None:
            return  # the client went away
        digest = hashlib.sha256(scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body).hexdigest()
        coll = service.state.infra.db[COLLECTION]
        record_id = f"{await _caller(service, scope)}|{key.decode('latin-1')}"
        while True:
            now = now_ms()
            try:
                await coll.insert_one({"_id": record_id, "request_hash": digest, "state": "running",
                                       "created_at": now})
                break  # ours to run
            except DuplicateKeyError:
                pass
            found = await coll.find_one({"_id": record_id})
            if found is None:
                continue  # released meanwhile: claim again
            created = found["created_at"] if found["created_at"].tzinfo else found["created_at"].replace(tzinfo=UTC)
            if created <= now - RETENTION:  # expired, not purged yet
                await coll.delete_one({"_id": record_id, "created_at": found["created_at"]})
                continue
            if found["request_hash"] != digest:
                await problem_response(422, detail="this Idempotency-Key was used for another request",
                                       instance=scope["path"])(scope, receive, send)
                return
            done = await self._wait(coll, record_id)
            if done is None:
                await problem_response(409, detail="the first request with this Idempotency-Key did not finish; "
                                       "retry", instance=scope["path"])(scope, receive, send)
                return
            await _replay(done, send)
            return
        await self._run_and_store(coll, record_id, scope, receive_again, send)

    async def _wait(self, coll: Any, record_id: str) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while loop.time() < deadline:
            found = await coll.find_one({"_id": record_id})
            if found is None:
                return None  # released: the first attempt failed
            if found["state"] == "done":
                return found
            await asyncio.sleep(self.poll_seconds)
        return None

    async def _run_and_store(self, coll: Any, record_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if status >= 500 or status in _NOT_STORED:
                await coll.delete_one({"_id": record_id})
            else:
                # name/value documents: FerretDB 1.24 stores no nested arrays
                kept = [{"name": k.decode("latin-1"), "value": v.decode("latin-1")} for k, v in headers
                        if k.lower() in _KEPT_HEADERS]
                await coll.update_one({"_id": record_id}, {"$set": {
                    "state": "done", "status": status, "headers": kept, "body": b"".join(chunks),
                    "completed_at": now_ms()}})


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)


async def _replay(record: dict[str, Any], send: Send) -> None:
    body = bytes(record["body"])
    headers = [(h["name"].encode("latin-1"), h["value"].encode("latin-1")) for h in record["headers"]]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": record["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})
