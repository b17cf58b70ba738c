"""Cursor pagination: ``{"items": [...], "next_cursor": str | null}`` with ``limit`` and ``cursor``.

Ids are ObjectId hex strings, so newest-first is ``_id`` descending and the cursor is the last id seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from clinishare_shared.problems import Problem

T = TypeVar("T")
D = TypeVar("D", bound=Mapping[str, Any])  # a stored document, as the store types it
_CURSOR = re.compile(r"^[0-9a-f]{24}$")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageQuery(BaseModel):
    limit: int
    cursor: str | None

    def id_filter(self) -> dict[str, Any]:
        """Filter for the next page of a newest-first (``_id`` descending) listing."""
        return {"_id": {"$lt": self.cursor}} if self.cursor else {}

    def page(self, docs: list[D]) -> tuple[list[D], str | None]:
        """Given up to limit+1 docs, the page and the next cursor."""
        if len(docs) > self.limit:
            docs = docs[: self.limit]
            return docs, str(docs[-1]["_id"])
        return docs, None


async def _page_query(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> PageQuery:
    if cursor is not None and not _CURSOR.match(cursor):
        raise Problem(422, "invalid cursor")
    return PageQuery(limit=limit, cursor=cursor)


PageParams = Annotated[PageQuery, Depends(_page_query)]
