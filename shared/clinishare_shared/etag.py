"""Entity tags for optimistic concurrency (SPEC 10.3): reads answer an ``ETag``; a ``PATCH`` with an
``If-Match`` that no longer matches is 412 and changes nothing. The tag is opaque: a hash of the
resource id and the token that changes with every write (a revision, or the last update's time)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import Header, Response

from clinishare_shared.problems import Problem

IfMatch = Annotated[str | None, Header(alias="If-Match", description="the ETag this change is based on; "
                                       "a stale one is 412 and changes nothing")]


def entity_tag(resource_id: str, version: Any) -> str:
    digest = hashlib.sha256(f"{resource_id}:{version}".encode()).hexdigest()[:32]
    return f'"{digest}"'


def matches(if_match: str | None, current: str) -> bool:
    """RFC 9110 If-Match with strong comparison: absent or ``*`` matches; else one listed tag must."""
    if if_match is None or if_match.strip() == "*":
        return True
    return current in (t.strip() for t in if_match.split(","))


def precondition_failed() -> Problem:
    return Problem(412, "the resource changed since the given ETag; read it again and retry")


def check_if_match(if_match: str | None, current: str) -> None:
    if not matches(if_match, current):
        raise precondition_failed()


def tag(response: Response, etag: str) -> None:
    response.headers["ETag"] = etag
