"""The compatibility check (SPEC 10.5): the committed AsyncAPI document is the previous contract; the
models of today must not break its readers. Synthetic catalogues cover each kind of change."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from clinishare_shared.asyncapi import asyncapi_document
from clinishare_shared.compat import breaking_changes, git_versions
from clinishare_shared.events import EventData

ROOT = Path(__file__).resolve().parents[3]
PUBLISHED = ROOT / "docs" / "asyncapi.json"
T = "test.thing.happened"


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    part_id: str
    role: Literal["a", "b"]


class Base(EventData):
    event_type: ClassVar[str] = T
    thing_id: str
    count: int
    kind: Literal["x", "y"]
    at: datetime
    note_id: str | None = None
    tags: list[str] = []
    parts: list[Part] = []


def doc(model: type[EventData], *, extra: dict[str, type[EventData]] | None = None, version: int = 1) -> dict[str, Any]:
    return json.loads(json.dumps(asyncapi_document({T: model, **(extra or {})}, version=version)))


PREVIOUS = doc(Base)


def check(model: type[EventData], **kw: Any) -> list[str]:
    return breaking_changes(PREVIOUS, doc(model, **kw))


# ---- what passes --------------------------------------------------------------------------------------


def test_the_same_catalogue_passes() -> None:
    assert check(Base) == []


def test_adding_an_optional_field_passes() -> None:
    class AddedOptional(Base):
        office_id: str | None = None
        flags: list[str] = Field(default=[])

    assert check(AddedOptional) == []


def test_a_new_event_type_passes() -> None:
    class Other(EventData):
        event_type: ClassVar[str] = "test.other.happened"
        other_id: str

    assert check(Base, extra={"test.other.happened": Other}) == []


def test_making_an_optional_field_required_or_narrowing_passes() -> None:
    class Narrowed(Base):
        note_id: str  # type: ignore[assignment]  # was str | None: every value is still one a reader expects
        kind: Literal["x"]  # type: ignore[assignment]

    assert check(Narrowed) == []


def test_a_new_schema_version_is_a_new_contract() -> None:
    class Broken(EventData):
        event_type: ClassVar[str] = T
        other: int

    assert check(Broken) != []
    assert check(Broken, version=2) == []


# ---- what breaks, naming the field path -------------------------------------------------------------------


def test_removing_a_field_fails_naming_it() -> None:
    class Removed(EventData):
        event_type: ClassVar[str] = T
        thing_id: str
        kind: Literal["x", "y"]
        at: datetime
        note_id: str | None = None
        tags: list[str] = []
        parts: list[Part] = []

    assert check(Removed) == [f"{T} data.count: field removed or renamed"]


def test_renaming_a_field_fails_naming_the_old_path() -> None:
    class Renamed(EventData):
        event_type: ClassVar[str] = T
        thing_ref: str
        count: int
        kind: Literal["x", "y"]
        at: datetime
        note_id: str | None = None
        tags: list[str] = []
        parts: list[Part] = []

    assert check(Renamed) == [f"{T} data.thing_id: field removed or renamed (new here: thing_ref)",
                              f"{T} data.thing_ref: new required field (a new field must be optional)"]


@pytest.mark.parametrize(("field", "annotation", "expected"), [
    ("count", str, "data.count: type changed from integer to string"),
    ("at", str, "data.at: type changed from string:date-time to string"),
    ("thing_id", str | None, "data.thing_id: type changed from string to null | string"),
    ("kind", Literal["x", "y", "z"], 'data.kind: type changed from enum:"x" | enum:"y" to enum:"x" | enum:"y" | enum:"z"'),
    ("tags", list[int], "data.tags[]: type changed from string to integer"),
    ("tags", str, "data.tags: type changed from array to string"),
])
def test_changing_a_type_fails_naming_the_field(field: str, annotation: Any, expected: str) -> None:
    Changed = type("Changed", (Base,), {"__annotations__": {field: annotation}, "__module__": __name__})
    problems = check(Changed)
    assert len(problems) == 1 and problems[0].startswith(f"{T} {expected}"), problems


def test_a_change_inside_a_nested_model_names_the_nested_path() -> None:
    class Part2(BaseModel):
        model_config = ConfigDict(extra="ignore", frozen=True)
        part_id: int
        role: Literal["a", "b"]

    class Nested(Base):
        parts: list[Part2] = []  # type: ignore[assignment]

    assert check(Nested) == [f"{T} data.parts[].part_id: type changed from string to integer "
                             "(an old reader does not expect integer)"]


def test_adding_a_required_field_fails_naming_it() -> None:
    class AddedRequired(Base):
        office_id: str

    assert check(AddedRequired) == [f"{T} data.office_id: new required field (a new field must be optional)"]


def test_making_a_required_field_optional_fails() -> None:
    class Loosened(Base):
        thing_id: str = "x"

    assert check(Loosened) == [f"{T} data.thing_id: was required, now optional (an old reader counts on it)"]


def test_removing_an_event_type_fails() -> None:
    class Other(EventData):
        event_type: ClassVar[str] = "test.other.happened"
        other_id: str

    previous = doc(Base, extra={"test.other.happened": Other})
    assert breaking_changes(previous, doc(Base)) == ["test.other.happened: event type removed"]


# ---- the real catalogue against the real contract -----------------------------------------------------------


def test_current_models_do_not_break_the_committed_contract() -> None:
    current = json.loads(json.dumps(asyncapi_document()))
    assert breaking_changes(json.loads(PUBLISHED.read_text()), current) == []


def test_current_models_do_not_break_any_published_contract_of_this_schema_version() -> None:
    """Every version of docs/asyncapi.json in the history: a breaking change cannot be slipped in by
    regenerating the document in the same commit."""
    try:
        versions = git_versions("docs/asyncapi.json", cwd=ROOT)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no git history to read the earlier contracts from ({type(exc).__name__})")
    if not versions:
        pytest.skip("docs/asyncapi.json has no committed version yet (a shallow or fresh checkout)")
    current = json.loads(json.dumps(asyncapi_document()))
    for commit, previous in versions:
        assert breaking_changes(previous, current) == [], f"breaks the contract published in {commit[:10]}"


def test_the_checker_runs_as_a_module_and_fails_on_a_break(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "clinishare_shared.compat", "--against", str(PUBLISHED)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "0 breaking change(s)" in ok.stdout
    tampered = json.loads(PUBLISHED.read_text())
    tampered["components"]["schemas"]["ChartCreated"]["properties"]["chart_code"] = {"type": "string"}
    (tmp_path / "old.json").write_text(json.dumps(tampered))
    bad = subprocess.run([sys.executable, "-m", "clinishare_shared.compat", "--against", str(tmp_path / "old.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "BREAKING charts.chart.created data.chart_code: field removed or renamed" in bad.stdout
