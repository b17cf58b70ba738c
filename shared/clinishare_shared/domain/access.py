"""Who can see this (SPEC 10.2), as plain data: each reader with every ground that lets them read.

Each service computes grounds with the SAME pure functions its read check uses (the read check is
"the author, or at least one ground"), so the access list and the read check cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

Through = Literal["practitioner", "office", "patient", "pin", "office_membership"]
ReaderKind = Literal["practitioner", "staff", "patient"]


@dataclass(frozen=True)
class Ground:
    """One reason a reader can read an item now: the grant (or share) and what it reaches them through.
    ``through``: ``practitioner`` named directly (an office colleague of the sharer), ``pin`` named directly
    (connected by PIN), ``office_membership`` a current member of the named office ``office_id``,
    ``patient`` the patient named."""

    grant_id: str
    rule: str
    through: Through
    office_id: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Reader:
    kind: ReaderKind
    id: str


Item = TypeVar("Item")


@dataclass(frozen=True)
class Readable(Generic[Item]):
    """An item the caller may read (its stored document, as the store types it), and every ground they
    read it through (none: the item is theirs)."""

    item: Item
    grounds: list[Ground]

    @property
    def own(self) -> bool:
        return not self.grounds
