"""The access rule, exhaustively: every rule x recipient kind x grant condition."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datetime import UTC, datetime, timedelta

from clinishare_charts.domain import access
from clinishare_charts.domain.access import RULES, ChartRef, GrantRef, practitioner_offices, who_can_read
from clinishare_shared.domain.sharing import SharingList

AUTHOR, OTHER_AUTHOR, VIEWER, OFFICE = "author", "someone-else", "viewer", "office-o"
CHART = ChartRef(id="chart-1", author_id=AUTHOR, patient_id="patient-1")
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# the author's sharing list: the viewer (by PIN) and the office are on it
ON_LIST = SharingList(practitioners={VIEWER: "pin", "another-practitioner": "office"},
                      offices={OFFICE: "member", "office-x": "pin"})


def can_read(viewer: str, chart: ChartRef, grants: list[GrantRef], offices: dict[str, str],
             sharer: SharingList = ON_LIST, now: datetime = NOW) -> bool:
    return access.can_read(viewer, chart, grants, offices, sharer, now)

# how the grant names (or fails to name) the viewer, and the viewer's office memberships now
RECIPIENTS = {
    "direct": (frozenset({VIEWER}), frozenset(), {}),
    "office_member": (frozenset(), frozenset({OFFICE}), {OFFICE: "practitioner"}),
    "office_staff": (frozenset(), frozenset({OFFICE}), {OFFICE: "staff"}),
    "left_office": (frozenset(), frozenset({OFFICE}), {}),
    "member_of_other_office": (frozenset(), frozenset({OFFICE}), {"office-x": "practitioner"}),
    "outsider": (frozenset({"another-practitioner"}), frozenset({"office-x"}), {}),
}
CONDITIONS = ["active", "revoked", "other_owner", "other_patient"]


def _grant(rule: str, recipient: str, condition: str) -> GrantRef:
    people, offices, _ = RECIPIENTS[recipient]
    other = condition == "other_patient"
    return GrantRef(
        owner_id=OTHER_AUTHOR if condition == "other_owner" else AUTHOR,
        rule=rule,  # type: ignore[arg-type]
        chart_id=("chart-2" if other else CHART.id) if rule == "chart" else None,
        patient_id=("patient-2" if other else CHART.patient_id) if rule == "patient" else None,
        practitioner_ids=people, office_ids=offices, revoked=condition == "revoked",
    )


def _expected(rule: str, recipient: str, condition: str) -> bool:
    reached = recipient in ("direct", "office_member")
    covered = condition == "active" or (condition == "other_patient" and rule == "all")
    return reached and covered


@pytest.mark.parametrize("rule,recipient,condition", list(itertools.product(RULES, RECIPIENTS, CONDITIONS)))
def test_every_rule_recipient_and_condition(rule: str, recipient: str, condition: str) -> None:
    grant = _grant(rule, recipient, condition)
    offices = RECIPIENTS[recipient][2]
    assert can_read(VIEWER, CHART, [grant], offices) is _expected(rule, recipient, condition)


@pytest.mark.parametrize("recipient", list(RECIPIENTS))
def test_the_author_always_reads_without_grants(recipient: str) -> None:
    assert can_read(AUTHOR, CHART, [], RECIPIENTS[recipient][2])


def test_no_grants_no_access() -> None:
    assert not can_read(VIEWER, CHART, [], {OFFICE: "practitioner"})


def test_a_revoked_grant_does_not_hide_an_active_one() -> None:
    revoked = _grant("chart", "direct", "revoked")
    active = _grant("all", "office_member", "active")
    assert can_read(VIEWER, CHART, [revoked, active], {OFFICE: "practitioner"})


def test_patient_rule_covers_later_charts_of_that_patient_only() -> None:
    grant = _grant("patient", "direct", "active")
    later = ChartRef(id="chart-later", author_id=AUTHOR, patient_id="patient-1")
    other_patient = ChartRef(id="chart-other", author_id=AUTHOR, patient_id="patient-2")
    assert can_read(VIEWER, later, [grant], {})
    assert not can_read(VIEWER, other_patient, [grant], {})


def test_chart_rule_covers_that_chart_only() -> None:
    grant = _grant("chart", "direct", "active")
    sibling = ChartRef(id="chart-9", author_id=AUTHOR, patient_id="patient-1")
    assert not can_read(VIEWER, sibling, [grant], {})


def test_a_grant_never_covers_another_authors_chart() -> None:
    foreign = ChartRef(id="chart-1", author_id=OTHER_AUTHOR, patient_id="patient-1")
    for rule in RULES:
        assert not can_read(VIEWER, foreign, [_grant(rule, "direct", "active")], {})


@pytest.mark.parametrize("recipient", ["direct", "office_member"])
def test_a_recipient_off_the_sharers_list_reads_nothing(recipient: str) -> None:
    """A deleted connection, or the sharer leaving the office, ends access at once (SPEC 10.1)."""
    grant = _grant("all", recipient, "active")
    offices = RECIPIENTS[recipient][2]
    assert can_read(VIEWER, CHART, [grant], offices)
    assert not can_read(VIEWER, CHART, [grant], offices, sharer=SharingList())
    # the other way of being reached still counts when only one is gone
    both = GrantRef(owner_id=AUTHOR, rule="all", practitioner_ids=frozenset({VIEWER}),
                    office_ids=frozenset({OFFICE}))
    only_office = SharingList(offices={OFFICE: "member"})
    assert can_read(VIEWER, CHART, [both], {OFFICE: "practitioner"}, sharer=only_office)
    assert [g.through for g in access.grounds(VIEWER, CHART, [both], {OFFICE: "practitioner"}, ON_LIST, NOW)] == [
        "pin", "office_membership"]


def test_an_expired_grant_gives_nothing() -> None:
    soon = GrantRef(owner_id=AUTHOR, rule="chart", chart_id=CHART.id, practitioner_ids=frozenset({VIEWER}),
                    expires_at=NOW + timedelta(seconds=1))
    assert can_read(VIEWER, CHART, [soon], {})
    assert not can_read(VIEWER, CHART, [soon], {}, now=NOW + timedelta(seconds=1))
    assert not can_read(VIEWER, CHART, [soon], {}, now=NOW + timedelta(days=1))


def test_who_can_read_expands_offices_and_drops_staff_and_former_members() -> None:
    grant = GrantRef(owner_id=AUTHOR, rule="patient", patient_id=CHART.patient_id, id="g1",
                     practitioner_ids=frozenset({VIEWER}), office_ids=frozenset({OFFICE}))
    rosters = {OFFICE: {"p1": "practitioner", "s1": "staff", AUTHOR: "practitioner"}}
    readers = who_can_read(CHART, [grant], rosters, ON_LIST, NOW)
    assert {r.id: [(g.through, g.office_id) for g in gs] for r, gs in readers.items()} == {
        VIEWER: [("pin", None)], "p1": [("office_membership", OFFICE)]}
    rosters = {OFFICE: {"s1": "staff"}}  # p1 left the office
    assert {r.id for r in who_can_read(CHART, [grant], rosters, ON_LIST, NOW)} == {VIEWER}


def test_practitioner_offices_leaves_out_staff_roles() -> None:
    assert practitioner_offices({"a": "practitioner", "b": "staff", "c": "practitioner"}) == ["a", "c"]


ids = st.sampled_from(["p1", "p2", "viewer", "author"])
office_ids = st.sampled_from(["o1", "o2"])


@given(
    rule=st.sampled_from(RULES), people=st.frozensets(ids), offices=st.frozensets(office_ids),
    roles=st.dictionaries(office_ids, st.sampled_from(["practitioner", "staff"])), revoked=st.booleans(),
)
def test_staff_membership_never_grants_what_practitioner_membership_would_not(
        rule: str, people: frozenset[str], offices: frozenset[str], roles: dict[str, str], revoked: bool) -> None:
    grant = GrantRef(owner_id=AUTHOR, rule=rule, chart_id=CHART.id, patient_id=CHART.patient_id,  # type: ignore[arg-type]
                     practitioner_ids=people, office_ids=offices, revoked=revoked)
    as_staff = {o: "staff" for o in roles}
    everyone = SharingList(practitioners={i: "office" for i in ["p1", "p2", "viewer", "author"]},
                           offices={"o1": "member", "o2": "pin"})
    result = can_read(VIEWER, CHART, [grant], roles, sharer=everyone)
    assert result == (not revoked and (VIEWER in people or any(roles.get(o) == "practitioner" for o in offices)))
    # demoting the viewer to staff everywhere leaves only direct grants
    assert can_read(VIEWER, CHART, [grant], as_staff, sharer=everyone) == (not revoked and VIEWER in people)
