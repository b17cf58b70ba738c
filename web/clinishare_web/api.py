"""The backend-for-frontend's client of the public API: every page is built from `/v1` calls made with
the visitor's own token, exactly as any other client would make them (no private shortcut)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from clinishare_shared.problems import PROBLEM_JSON


@dataclass
class ApiError(Exception):
    """A problem+json answer, with its messages sorted by the form field they concern."""

    status: int
    detail: str
    fields: dict[str, str] = field(default_factory=dict)
    problem: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail


class SessionExpired(Exception):
    """The API answered 401: the token ended (or was never valid); the visitor logs in again."""


def _humane(msg: str) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    first = msg.split(" ", 1)[0]
    return msg[:1].upper() + msg[1:] if msg and "_" not in first else msg


def problem_error(status: int, body: Any, known_fields: tuple[str, ...] = ()) -> ApiError:
    """Turn a problem+json body into an ApiError whose `fields` map a form field name to its message.

    Two shapes of per-field errors exist: request validation (`errors: [{loc, msg}]`, the field is the
    last name in `loc`) and answer validation (`errors: [{field, reason}]`). A model-level message (loc is
    just `body`) goes to the field it names, if any of `known_fields` appears in it, else to the form.
    """
    problem = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or problem.get("title") or f"the request failed ({status})")
    fields: dict[str, str] = {}
    for err in problem.get("errors") or []:
        if not isinstance(err, dict):
            continue
        if "field" in err:
            fields.setdefault(str(err["field"]), _humane(str(err.get("reason", "invalid"))))
            continue
        names = [p for p in err.get("loc", []) if isinstance(p, str) and p not in ("body", "query", "path")]
        raw = str(err.get("msg", "invalid"))
        msg = _humane(raw)
        name = names[-1] if names else next((k for k in known_fields if k in raw), "_form")
        fields.setdefault(name, msg)
    if not fields and known_fields and status == 422:
        # a rule's refusal without a field list ("the password must be at least 10 characters long"):
        # next to the field the message names first
        text = detail.lower()
        hits = [(text.find(k.replace("_", " ")), k) for k in known_fields if k.replace("_", " ") in text]
        if hits:
            fields[min(hits)[1]] = _humane(detail)
    if fields and detail == "the request is invalid":
        detail = "Please correct the fields marked below."
    return ApiError(status=status, detail=_humane(detail), fields=fields, problem=problem)


class Api:
    """One visitor's view of the API (their bearer token, or none)."""

    def __init__(self, client: httpx.AsyncClient, token: str | None, request_id: str | None = None) -> None:
        self.client = client
        self.headers = {"accept": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        if request_id:
            self.headers["x-request-id"] = request_id

    async def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                   files: Any = None, data: Any = None, known_fields: tuple[str, ...] = ()) -> Any:
        params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        resp = await self.client.request(method, path, json=json, params=params or None, files=files, data=data,
                                         headers=self.headers)
        if resp.status_code == 401 and "authorization" in self.headers:
            raise SessionExpired()
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise problem_error(resp.status_code, body, known_fields)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith(("application/json", PROBLEM_JSON)):
            return resp.json()
        return resp

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None, *, known_fields: tuple[str, ...] = ()) -> Any:
        return await self.call("POST", path, json=body if body is not None else {}, known_fields=known_fields)

    async def patch(self, path: str, body: Any, *, known_fields: tuple[str, ...] = ()) -> Any:
        return await self.call("PATCH", path, json=body, known_fields=known_fields)

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, json=body)

    async def delete(self, path: str) -> None:
        await self.call("DELETE", path)

    async def stream(self, path: str) -> httpx.Response:
        """A download (document content, CSV), streamed; the caller closes it."""
        req = self.client.build_request("GET", path, headers=self.headers)
        resp = await self.client.send(req, stream=True)
        if resp.status_code >= 400:
            await resp.aread()
            await resp.aclose()
            if resp.status_code == 401:
                raise SessionExpired()
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise problem_error(resp.status_code, body)
        return resp
