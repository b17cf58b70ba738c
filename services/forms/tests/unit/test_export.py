from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from clinishare_forms.domain.export import cell, columns, csv_line, record


def test_columns_are_the_union_of_every_version_in_field_order():
    versions = [{"version": 2, "fields": [{"key": "b"}, {"key": "c"}]},
                {"version": 1, "fields": [{"key": "a"}, {"key": "b"}]}]
    assert columns(versions) == ["a", "b", "c", "submitted_at", "patient_id", "practitioner_id"]


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), (-3, "'-3"),
    ("plain", "plain"), (True, "true"), (None, ""), (["a", "b"], "a; b"), (["=x"], "'=x"),
])
def test_cells_never_start_a_formula(value, expected):
    assert cell(value) == expected


def test_a_record_in_header_order():
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    header = ["a", "b", "submitted_at", "patient_id", "practitioner_id"]
    submission = {"answers": {"b": "x,y"}, "submitted_at": at, "patient_id": "p", "practitioner_id": "d"}
    out = csv_line(header) + csv_line(record(header, submission))
    parsed = list(csv.reader(io.StringIO(out)))
    assert parsed == [header, ["", "x,y", "2025-01-02T03:04:05+00:00", "p", "d"]]
