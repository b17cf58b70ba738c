"""Who may read a chart: the one rule, over plain data, evaluated at read time (SPEC sections 1 and 4).

A chart grant exposes charts only, and only charts of the grant's owner:
- ``chart``   that one chart;
- ``patient`` every chart of that patient the owner wrote, now and later;
- ``all``     every chart the owner wrote, now and later.
It reaches the practitioners it names, and whoever is a *practitioner* member of a named office when
the chart is read (staff of that office are not practitioners and read nothing). A revoked grant
reaches nobody. The author always reads their own chart.

The store's shared-with-me query implements this same rule in MongoDB; a property test checks they agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

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

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "GrantRef":
        return cls(owner_id=doc["owner_id"], rule=doc["rule"], chart_id=doc.get("chart_id"),
                   patient_id=doc.get("patient_id"), practitioner_ids=frozenset(doc.get("practitioner_ids", ())),
                   office_ids=frozenset(doc.get("office_ids", ())), revoked=doc.get("revoked_at") is not None)


def covers(grant: GrantRef, chart: ChartRef) -> bool:
    """Whether the grant, while active, is about this chart."""
    if grant.revoked or grant.owner_id != chart.author_id:
        return False
    if grant.rule == "chart":
        return grant.chart_id == chart.id
    if grant.rule == "patient":
        return grant.patient_id == chart.patient_id
    return grant.rule == "all"


def reaches(grant: GrantRef, viewer_id: str, viewer_offices: Mapping[str, str]) -> bool:
    """Whether the grant names the viewer, directly or through an office they are a practitioner of now.
    ``viewer_offices`` maps each office the viewer belongs to now to their role there."""
    if viewer_id in grant.practitioner_ids:
        return True
    return any(viewer_offices.get(office_id) == "practitioner" for office_id in grant.office_ids)


def can_read(viewer_id: str, chart: ChartRef, grants: Iterable[GrantRef], viewer_offices: Mapping[str, str]) -> bool:
    if viewer_id == chart.author_id:
        return True
    return any(covers(g, chart) and reaches(g, viewer_id, viewer_offices) for g in grants)


def practitioner_offices(viewer_offices: Mapping[str, str]) -> list[str]:
    """The offices through which office grants reach the viewer."""
    return sorted(o for o, role in viewer_offices.items() if role == "practitioner")
