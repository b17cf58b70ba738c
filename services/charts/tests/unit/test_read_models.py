"""Responses are built from the stored documents once (``XRead.from_doc``), names from the projection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clinishare_charts.domain.schemas import ChartRead, ChartWithNotes
from clinishare_charts.domain.stored import ChartDoc, NoteDoc

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CHART: ChartDoc = {"_id": "c1", "author_id": "dr-a", "patient_id": "p1", "patient_name": "Ada", "title": "Visit",
                   "body": "text", "created_at": AT, "updated_at": AT}
NOTES: list[NoteDoc] = [{"_id": "n1", "chart_id": "c1", "author_id": "dr-b", "text": "seen", "created_at": AT}]
NAMES = {"dr-a": "Dr A", "dr-b": "Dr B"}


def test_a_chart_read_by_someone_it_is_shared_with_names_the_sharer() -> None:
    own = ChartRead.from_doc(CHART, NAMES)
    assert (own.id, own.author_name, own.sharer_name, own.patient_name) == ("c1", "Dr A", None, "Ada")
    assert ChartRead.from_doc(CHART, NAMES, shared=True).sharer_name == "Dr A"
    assert ChartRead.from_doc(CHART, {}).author_name is None  # a name the projection lacks is left out


def test_a_chart_with_its_notes_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # the read path used to build a ChartRead, dump it and validate the dump again as ChartWithNotes
    def no_round_trip(*args: object, **kwargs: object) -> None:
        raise AssertionError("ChartRead was dumped to build the response")

    monkeypatch.setattr(ChartRead, "model_dump", no_round_trip)
    read = ChartWithNotes.from_doc(CHART, NAMES, shared=True, notes=NOTES)
    assert read.sharer_name == "Dr A"
    assert [(n.id, n.author_name, n.text) for n in read.notes] == [("n1", "Dr B", "seen")]
    monkeypatch.undo()
    assert read.model_dump(mode="json")["updated_at"] == "2026-01-02T03:04:05.678000Z"
