"""The sharing list (SPEC section 3), as a pure function over plain data.

A practitioner P may share with: practitioners in any office P is a member of (via "office"),
practitioners P connected to by PIN (via "pin"), offices P is a member of (via "member"), offices P
connected to by PIN (via "pin"). Nobody else: that is what makes a share deliberate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Via = Literal["office", "pin", "member"]


@dataclass(frozen=True)
class OfficeView:
    id: str
    members: Mapping[str, str]  # account id -> role ("practitioner" | "staff")


@dataclass(frozen=True)
class ConnectionView:
    target_kind: Literal["practitioner", "office"]
    target_id: str


@dataclass(frozen=True)
class SharingList:
    practitioners: dict[str, Via] = field(default_factory=dict)
    offices: dict[str, Via] = field(default_factory=dict)

    def refused(self, *, practitioner_ids: Iterable[str] = (), office_ids: Iterable[str] = ()) -> list[str]:
        """Ids that are not on this list, in the order given."""
        bad = [p for p in practitioner_ids if p not in self.practitioners]
        bad += [o for o in office_ids if o not in self.offices]
        return list(dict.fromkeys(bad))


def sharing_list(me: str, *, my_offices: Iterable[OfficeView], connections: Iterable[ConnectionView],
                 practitioner_ids: Iterable[str] | None = None) -> SharingList:
    """``my_offices`` are the offices ``me`` is a member of now; ``connections`` are ``me``'s own live
    connections. ``practitioner_ids``, when given, limits PIN targets to accounts known to be practitioners
    (a connection to an account that is not one is ignored)."""
    known = set(practitioner_ids) if practitioner_ids is not None else None
    people: dict[str, Via] = {}
    offices: dict[str, Via] = {}
    for office in my_offices:
        if me not in office.members:
            continue
        offices[office.id] = "member"
        for account_id, role in office.members.items():
            if role == "practitioner" and account_id != me:
                people.setdefault(account_id, "office")
    for c in connections:
        if c.target_kind == "office":
            offices.setdefault(c.target_id, "pin")
        elif c.target_id != me and (known is None or c.target_id in known):
            people.setdefault(c.target_id, "pin")
    return SharingList(practitioners=people, offices=offices)


def through_of(sharer: SharingList, practitioner_id: str) -> Literal["practitioner", "pin"]:
    """How a practitioner named in a grant is on the sharer's list: by PIN, or as an office colleague."""
    return "pin" if sharer.practitioners.get(practitioner_id) == "pin" else "practitioner"


# ---- expiring shares (SPEC 10.1) ------------------------------------------------------------------

MAX_EXPIRY = timedelta(days=5 * 365 + 1)  # five years ahead, leap days included


def expiry_problem(expires_at: datetime | None, now: datetime) -> str | None:
    """Why ``expires_at`` may not be used for a new share (None: it may). It must carry a time zone,
    lie in the future, and at most five years ahead."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        return "expires_at must carry a time zone (RFC 3339)"
    if expires_at <= now:
        return "expires_at must be in the future"
    if expires_at > now + MAX_EXPIRY:
        return "expires_at must be at most 5 years ahead"
    return None


def in_force(expires_at: datetime | None, now: datetime) -> bool:
    """A share with no expiry is in force; one with an expiry only before it."""
    return expires_at is None or now < expires_at
