"""Request validation: what is refused before anything is looked up or stored."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from clinishare_charts.domain.schemas import ChartCreate, ChartUpdate, GrantCreate, NoteCreate


def grant(**over: Any) -> dict[str, Any]:
    return {"rule": "all", "practitioner_ids": ["p1"], "office_ids": [], "patient_consent": True, **over}


def test_a_valid_grant_of_each_rule() -> None:
    assert GrantCreate(**grant()).rule == "all"
    assert GrantCreate(**grant(rule="chart", chart_id="c1")).chart_id == "c1"
    assert GrantCreate(**grant(rule="patient", patient_id="x1", practitioner_ids=[], office_ids=["o"])).patient_id


@pytest.mark.parametrize("body,reason", [
    (grant(patient_consent=False), "patient_consent must be true"),
    (grant(rule="chart"), "needs chart_id"),
    (grant(rule="patient"), "needs patient_id"),
    (grant(rule="all", chart_id="c1"), "takes no chart_id"),
    (grant(rule="chart", chart_id="c1", patient_id="x"), "takes no patient_id"),
    (grant(practitioner_ids=[], office_ids=[]), "at least one recipient"),
])
def test_incoherent_grants_are_refused(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        GrantCreate(**body)


@pytest.mark.parametrize("body", [
    {k: v for k, v in grant().items() if k != "patient_consent"},
    grant(rule="everything"),
    grant(practitioner_ids=["bad id with spaces"]),
    grant(document_ids=["d1"]),  # a chart grant is about charts only
    grant(patient_consent="maybe"),
    grant(patient_consent="yes"), grant(patient_consent="true"), grant(patient_consent=1), grant(patient_consent=1.0),
    grant(patient_consent=None), grant(patient_consent=[True]),
])
def test_malformed_grants_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GrantCreate(**body)


def test_recipients_are_deduplicated_in_order() -> None:
    g = GrantCreate(**grant(practitioner_ids=["b", "a", "b"], office_ids=["o", "o"]))
    assert g.practitioner_ids == ["b", "a"] and g.office_ids == ["o"]


def test_chart_texts_are_bounded_and_titles_required() -> None:
    with pytest.raises(ValidationError):
        ChartCreate(patient_id="p", title="   ", body="")
    with pytest.raises(ValidationError):
        ChartCreate(patient_id="p", title="t", body="x" * 200_001)
    with pytest.raises(ValidationError):
        NoteCreate(text="")
    with pytest.raises(ValidationError):
        ChartUpdate(author_id="someone")  # type: ignore[call-arg]
    assert ChartUpdate(title=" New ").title == "New"
