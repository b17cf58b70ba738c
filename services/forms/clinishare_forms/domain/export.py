"""CSV export of submissions: one row per submission, one column per field key (the union over the
form's versions, in field order), then submitted_at, patient_id, practitioner_id."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

META_COLUMNS = ("submitted_at", "patient_id", "practitioner_id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def columns(versions: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for version in sorted(versions, key=lambda v: v["version"]):
        for field in version["fields"]:
            keys.setdefault(field["key"], None)
    return [*keys, *META_COLUMNS]


def cell(value: Any) -> str:
    """A value as a CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "; ".join(str(v) for v in value)
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record (CRLF-terminated), every value made safe by ``cell``."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([cell(v) for v in values])
    return buf.getvalue()


def record(header: Sequence[str], submission: dict[str, Any]) -> list[Any]:
    """A submission (``answers`` plus the meta columns) in header order."""
    answers = submission.get("answers", {})
    return [submission.get(h) if h in META_COLUMNS else answers.get(h) for h in header]
