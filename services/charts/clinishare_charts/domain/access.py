"""Who may read a chart: the one rule, over plain data, evaluated at read time (SPEC sections 1, 4, 10.1).

A chart grant exposes charts only, and only charts of the grant's owner:
- ``chart``   that one chart;
- ``patient`` every chart of that patient the owner wrote, now and later;
- ``all``     every chart the owner wrote, now and later.
It reaches the practitioners it names, and whoever is a *practitioner* member of a named office when
the chart is read (staff of that office are not practitioners and read nothing), but only while that
recipient is still on the owner's sharing list (a deleted connection or a left office ends it at once).
A revoked or expired grant reaches nobody. The author always reads their own chart.

``grounds`` is the single rule: ``can_read`` is "the author, or any ground", and "who can see this"
lists the grounds of every candidate reader, so the two cannot disagree. The store's shared-with-me
query implements ``covers`` in MongoDB; a property test checks they agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.domain.sharing import SharingList, in_force, through_of

Rule = Literal["chart", "patient", "all"]
RULES: tuple[Rule, ...] = ("chart", "patient", "all")


@dataclass(frozen=True)
class ChartRef:
    id: str
    author_id: str
    patient_id: str

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "ChartRef":
        return cls(id=doc["_id"], author_id=doc["author_id"], patient_id=doc["patient_id"])


@dataclass(frozen=True)
class GrantRef:
    owner_id: str
    rule: Rule
    practitioner_ids: frozenset[str] = frozenset()
    office_ids: frozenset[str] = frozenset()
    chart_id: str | None = None
    patient_id: str | None = None
    revoked: bool = False
    id: str = ""
    expires_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "GrantRef":
        return cls(owner_id=doc["owner_id"], rule=doc["rule"], chart_id=doc.get("chart_id"),
                   patient_id=doc.get("patient_id"), practitioner_ids=frozenset(doc.get("practitioner_ids", ())),
                   office_ids=frozenset(doc.get("office_ids", ())),
                   revoked=doc.get("revoked_at") is not None or doc.get("expired_at") is not None,
                   id=doc.get("_id", ""), expires_at=doc.get("expires_at"))

    def active(self, now: datetime) -> bool:
        return not self.revoked and in_force(self.expires_at, now)


def covers(grant: GrantRef, chart: ChartRef) -> bool:
    """Whether the grant, while active, is about this chart."""
    if grant.revoked or grant.owner_id != chart.author_id:
        return False
    if grant.rule == "chart":
        return grant.chart_id == chart.id
    if grant.rule == "patient":
        return grant.patient_id == chart.patient_id
    return grant.rule == "all"


def reach(grant: GrantRef, viewer_id: str, viewer_offices: Mapping[str, str], sharer: SharingList) -> list[Ground]:
    """How the grant reaches the viewer now: named directly, or through each office they are a practitioner
    member of now; only recipients still on the sharer's sharing list count."""
    out: list[Ground] = []
    common = {"grant_id": grant.id, "rule": grant.rule, "expires_at": grant.expires_at}
    if viewer_id in grant.practitioner_ids and viewer_id in sharer.practitioners:
        out.append(Ground(through=through_of(sharer, viewer_id), **common))
    for office_id in sorted(grant.office_ids):
        if viewer_offices.get(office_id) == "practitioner" and office_id in sharer.offices:
            out.append(Ground(through="office_membership", office_id=office_id, **common))
    return out


def grounds(viewer_id: str, chart: ChartRef, grants: Iterable[GrantRef], viewer_offices: Mapping[str, str],
            sharer: SharingList, now: datetime) -> list[Ground]:
    """Every way the viewer (not the author) can read the chart now. ``sharer`` is the author's sharing
    list now; ``viewer_offices`` maps each office the viewer belongs to now to their role there."""
    if viewer_id == chart.author_id:
        return []
    return [g for grant in grants if grant.active(now) and covers(grant, chart)
            for g in reach(grant, viewer_id, viewer_offices, sharer)]


def can_read(viewer_id: str, chart: ChartRef, grants: Iterable[GrantRef], viewer_offices: Mapping[str, str],
             sharer: SharingList, now: datetime) -> bool:
    if viewer_id == chart.author_id:
        return True
    return bool(grounds(viewer_id, chart, grants, viewer_offices, sharer, now))


def reaches(grant: GrantRef, viewer_id: str, viewer_offices: Mapping[str, str], sharer: SharingList) -> bool:
    return bool(reach(grant, viewer_id, viewer_offices, sharer))


def candidates(grants: Iterable[GrantRef], office_members: Mapping[str, Mapping[str, str]]) -> set[str]:
    """Everyone a grant could reach: named practitioners and current members of named offices.
    ``office_members``: office id -> {account id: role} now."""
    out: set[str] = set()
    for g in grants:
        out |= g.practitioner_ids
        for office_id in g.office_ids:
            out |= set(office_members.get(office_id, {}))
    return out


def who_can_read(chart: ChartRef, grants: Iterable[GrantRef], office_members: Mapping[str, Mapping[str, str]],
                 sharer: SharingList, now: datetime) -> dict[Reader, list[Ground]]:
    """Every reader other than the author with their grounds (office memberships expanded now)."""
    grants = list(grants)
    out: dict[Reader, list[Ground]] = {}
    for account_id in sorted(candidates(grants, office_members) - {chart.author_id}):
        roles = {o: m[account_id] for o, m in office_members.items() if account_id in m}
        found = grounds(account_id, chart, grants, roles, sharer, now)
        if found:
            out[Reader("practitioner", account_id)] = found
    return out


def practitioner_offices(viewer_offices: Mapping[str, str]) -> list[str]:
    """The offices through which office grants reach the viewer."""
    return sorted(o for o, role in viewer_offices.items() if role == "practitioner")
