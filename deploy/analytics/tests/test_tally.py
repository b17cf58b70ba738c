"""The counting rules, without I/O: dedup by id, office attribution from membership snapshots, unknown
types and fields, the saved form, pruning of old ids, and the reports written from a tally."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clinishare_analytics.consumer import parse_offset
from clinishare_analytics.report import load_tally, save_tally, write_reports
from clinishare_analytics.tally import NO_OFFICE, Tally
from clinishare_shared.events import (
    ChartShareGranted, DocumentShared, Envelope, FormShared, OfficeCreated, OfficeMember, OfficeMemberRemoved,
    SharePinRotated, make_event,
)


def at(event: Envelope, day: str) -> Envelope:
    return event.model_copy(update={"time": datetime.fromisoformat(f"{day}T10:00:00+00:00")})


def office(office_id: str, version: int, *members: str, day: str = "2026-03-01") -> Envelope:
    data = OfficeCreated(office_id=office_id, owner_id=members[0], name="N", version=version,
                         members=[OfficeMember(account_id=m, role="practitioner") for m in members])
    return at(make_event(data, source="identity", subject=office_id), day)


def grant(owner: str, day: str = "2026-03-01") -> Envelope:
    data = ChartShareGranted(grant_id="g", owner_id=owner, rule="all", practitioner_ids=["x"], office_ids=[])
    return at(make_event(data, source="charts", subject="g"), day)


def test_counts_per_day_type_and_the_actors_offices_once_per_id() -> None:
    t = Tally()
    t.apply(office("o1", 1, "alice", "bob"), offset=0)
    t.apply(office("o2", 1, "bob"), offset=1)
    share = grant("bob")
    assert t.apply(share, offset=2) is True
    assert t.apply(share, offset=3) is False  # the same event again (at least once): not counted
    t.apply(grant("carol", day="2026-03-02"), offset=4)
    assert t.next_offset == 5
    assert t.type_rows() == [("2026-03-01", "charts.share.granted", 1), ("2026-03-01", "identity.office.created", 2),
                             ("2026-03-02", "charts.share.granted", 1)]
    assert ("2026-03-01", "o1", "charts.share.granted", 1) in t.office_rows()
    assert ("2026-03-01", "o2", "charts.share.granted", 1) in t.office_rows()  # bob is in both
    assert ("2026-03-02", NO_OFFICE, "charts.share.granted", 1) in t.office_rows()
    assert t.shares_per_day() == {"2026-03-01": {"charts.share.granted": 1}, "2026-03-02": {"charts.share.granted": 1}}


def test_membership_follows_versions_not_arrival_order() -> None:
    t = Tally()
    removed = make_event(OfficeMemberRemoved(office_id="o1", account_id="bob", version=3,
                                             members=[OfficeMember(account_id="alice", role="practitioner")]),
                         source="identity", subject="o1")
    t.apply(removed)
    t.apply(office("o1", 1, "alice", "bob"))  # older snapshot, late: ignored
    assert t.offices["o1"]["members"] == ["alice"]
    assert t.offices_of(grant("bob")) == [NO_OFFICE]
    assert t.offices_of(grant("alice")) == ["o1"]


def test_office_events_count_for_the_office_itself() -> None:
    t = Tally()
    rotated = make_event(SharePinRotated(owner_kind="office", owner_id="o9", rotated_by="alice"),
                         source="identity", subject="o9")
    assert t.offices_of(rotated) == ["o9"]
    assert t.offices_of(office("o7", 1, "alice")) == ["o7"]


def test_unknown_types_and_fields_are_counted_not_refused() -> None:
    env = Envelope.model_validate({"id": "e1", "type": "charts.chart.archived", "source": "charts",
                                   "time": "2026-03-01T00:00:00Z", "subject": "c1",
                                   "data": {"chart_id": "c1", "author_id": "alice", "new_field": {"x": 1}},
                                   "added_later": True})
    t = Tally()
    assert t.apply(env)
    assert t.type_rows() == [("2026-03-01", "charts.chart.archived", 1)]


def test_saved_and_loaded_tally_still_deduplicates(tmp_path: Path) -> None:
    t = Tally()
    share = grant("alice")
    t.apply(share, offset=0)
    save_tally(tmp_path, t, stream="s")
    back = load_tally(tmp_path)
    assert back is not None and back.next_offset == 1 and back.by_type == t.by_type
    assert back.apply(share, offset=1) is False


def test_ids_older_than_the_kept_days_are_forgotten() -> None:
    t = Tally()
    old, new = grant("a", day="2026-01-01"), grant("a", day="2026-03-01")
    t.apply(old)
    t.apply(new)
    t.forget_ids_before(35)
    assert list(t.seen) == ["2026-03-01"]
    assert t.apply(new) is False
    assert t.by_type["2026-01-01|charts.share.granted"] == 1  # the counts stay


def test_reports_are_csv_and_a_png(tmp_path: Path) -> None:
    t = Tally()
    t.apply(office("o1", 1, "alice"))
    for event in (grant("alice"), make_event(DocumentShared(document_id="d", owner_id="alice",
                                                            practitioner_ids=["b"]), source="documents",
                                             subject="d"),
                  make_event(FormShared(form_id="f", author_id="alice", allow_others=True, practitioner_ids=["b"],
                                        office_ids=[]), source="forms", subject="f")):
        t.apply(at(event, "2026-03-01"))
    types_csv, offices_csv, png = write_reports(tmp_path, t)
    rows = list(csv.DictReader(types_csv.open()))
    assert {r["event_type"]: int(r["count"]) for r in rows} == {
        "identity.office.created": 1, "charts.share.granted": 1, "documents.shared": 1, "forms.shared": 1}
    office_rows = list(csv.DictReader(offices_csv.open()))
    assert {(r["office_id"], r["event_type"]) for r in office_rows} >= {("o1", "documents.shared"), ("o1", "forms.shared")}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_reports(tmp_path / "empty", Tally())  # nothing yet: still a chart, saying so


@pytest.mark.parametrize(("text", "expected"), [
    ("first", "first"), ("next", "next"), ("42", 42),
    ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
])
def test_parse_offset(text: str, expected: object) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-03-01T00:00:00", "-3"])
def test_parse_offset_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_offset(text)


def test_settings_read_the_system_variables_and_refuse_unknown_ones(monkeypatch, tmp_path: Path) -> None:
    from clinishare_analytics.__main__ import main
    from clinishare_analytics.settings import AnalyticsSettings

    monkeypatch.setenv("AMQP_URL", "amqp://u:p@broker:5672/")
    monkeypatch.setenv("EVENTS_STREAM", "x.stream")
    s = AnalyticsSettings()
    assert s.amqp_url == "amqp://u:p@broker:5672/" and s.stream == "x.stream"
    monkeypatch.setenv("ANALYTICS_STREAM", "y.stream")
    assert AnalyticsSettings().stream == "y.stream"  # the prefixed one wins
    monkeypatch.setenv("ANALYTICS_OUTDIR", str(tmp_path))  # a typo of ANALYTICS_OUT_DIR
    with pytest.raises(ValueError, match="ANALYTICS_OUTDIR"):
        AnalyticsSettings()
    assert main(["--no-progress"]) == 2  # refused before connecting to anything
