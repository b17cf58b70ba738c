"""Answers checked against field definitions, every type; form definitions checked as a whole."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from clinishare_forms.domain.fields import FormField, validate_answers
from clinishare_forms.domain.schemas import FormCreate, FormUpdate

FIELDS = TypeAdapter(list[FormField])


def one(definition: dict, value: object, *, present: bool = True) -> tuple[dict, list]:
    fields = FIELDS.validate_python([{"key": "f", "label": "F", **definition}])
    return validate_answers(fields, {"f": value} if present else {})


def reason(definition: dict, value: object) -> str | None:
    _, errors = one(definition, value)
    return errors[0]["reason"] if errors else None


TEXT, AREA = {"type": "text"}, {"type": "textarea", "max_length": 5}
NUMBER = {"type": "number", "min": -1, "max": 10}
DATE = {"type": "date"}
CHOICE = {"type": "choice", "options": ["red", "blue"]}
MULTI = {"type": "multi_choice", "options": ["a", "b", "c"]}
CHECK = {"type": "checkbox"}
SCALE = {"type": "scale", "min": 1, "max": 5}


@pytest.mark.parametrize("definition,value,expected", [
    (TEXT, "hello", "hello"), (AREA, "abcde", "abcde"),
    (NUMBER, -1, -1), (NUMBER, 10, 10), (NUMBER, 2.5, 2.5),
    (DATE, "2024-02-29", "2024-02-29"),
    (CHOICE, "blue", "blue"),
    (MULTI, ["c", "a"], ["a", "c"]),
    (CHECK, False, False), (CHECK, True, True),
    (SCALE, 1, 1), (SCALE, 5, 5), (SCALE, 3.0, 3),
])
def test_good_answers_are_accepted_and_normalised(definition, value, expected):
    clean, errors = one(definition, value)
    assert errors == [] and clean == {"f": expected}


@pytest.mark.parametrize("definition,value", [
    (TEXT, 5), (TEXT, ["x"]), (TEXT, "x" * 1001), (AREA, "abcdef"),
    (NUMBER, "5"), (NUMBER, True), (NUMBER, -1.01), (NUMBER, 10.5), (NUMBER, float("nan")),
    (DATE, "2023-02-29"), (DATE, "29/02/2024"), (DATE, "2024-02-29T10:00:00"), (DATE, 20240229),
    (CHOICE, "green"), (CHOICE, ["red"]), (CHOICE, 1),
    (MULTI, "a"), (MULTI, ["a", "z"]), (MULTI, ["a", "a"]), (MULTI, [1]),
    (CHECK, "yes"), (CHECK, 1),
    (SCALE, 0), (SCALE, 6), (SCALE, 2.5), (SCALE, "3"), (SCALE, True),
])
def test_bad_answers_are_refused_with_a_reason(definition, value):
    assert reason(definition, value)


@pytest.mark.parametrize("definition", [TEXT, AREA, NUMBER, DATE, CHOICE, MULTI, CHECK, SCALE])
@pytest.mark.parametrize("blank", [None, "", "  ", []])
def test_required_fields_must_be_answered(definition, blank):
    assert reason({**definition, "required": True}, blank) == "required"
    _, errors = one({**definition, "required": True}, None, present=False)
    assert errors == [{"field": "f", "reason": "required"}]
    clean, errors = one(definition, blank)  # optional: a blank answer is simply no answer
    assert (clean, errors) == ({}, [])


def test_a_required_checkbox_must_be_ticked():
    assert reason({**CHECK, "required": True}, False) == "required"
    assert reason({**CHECK, "required": True}, True) is None


def test_every_bad_field_is_listed_in_field_order_then_unknown_keys():
    fields = FIELDS.validate_python([
        {"type": "text", "key": "a", "label": "A", "required": True},
        {"type": "number", "key": "b", "label": "B", "max": 1},
        {"type": "checkbox", "key": "c", "label": "C"},
        {"type": "scale", "key": "d", "label": "D", "min": 0, "max": 3},
    ])
    clean, errors = validate_answers(fields, {"zz": 1, "b": 2, "c": True, "d": 9, "yy": None})
    assert [e["field"] for e in errors] == ["a", "b", "d", "zz", "yy"]
    assert errors[-1]["reason"] == "unknown field"
    assert clean == {"c": True}


def form(fields: list) -> dict:
    return {"title": "T", "fields": fields}


@pytest.mark.parametrize("fields", [
    [],
    [{"type": "text", "key": "a", "label": "A"}, {"type": "number", "key": "a", "label": "A2"}],
    [{"type": "choice", "key": "a", "label": "A", "options": []}],
    [{"type": "choice", "key": "a", "label": "A"}],
    [{"type": "multi_choice", "key": "a", "label": "A", "options": ["x", "x"]}],
    [{"type": "signature", "key": "a", "label": "A"}],
    [{"key": "a", "label": "A"}],
    [{"type": "scale", "key": "a", "label": "A", "min": 3, "max": 3}],
    [{"type": "scale", "key": "a", "label": "A", "min": 4, "max": 3}],
    [{"type": "scale", "key": "a", "label": "A"}],
    [{"type": "number", "key": "a", "label": "A", "min": 2, "max": 1}],
    [{"type": "text", "key": "has space", "label": "A"}],
    [{"type": "text", "key": "9lives", "label": "A"}],
    [{"type": "text", "key": "a", "label": " "}],
    [{"type": "text", "key": "a", "label": "A", "options": ["x"]}],
    [{"type": "text", "key": "patient_id", "label": "clashes with an export column"}],
])
def test_malformed_form_definitions_are_refused(fields):
    with pytest.raises(ValidationError):
        FormCreate.model_validate(form(fields))
    if fields:
        with pytest.raises(ValidationError):
            FormUpdate.model_validate({"fields": fields})


def test_a_well_formed_definition_with_every_type():
    every = [{"type": "text", "key": "t", "label": "T", "required": True},
             {"type": "textarea", "key": "ta", "label": "TA"},
             {"type": "number", "key": "n", "label": "N", "min": 1, "max": 1},
             {"type": "number", "key": "n2", "label": "N2"},
             {"type": "date", "key": "d", "label": "D"},
             {"type": "choice", "key": "c", "label": "C", "options": ["x"]},
             {"type": "multi_choice", "key": "m", "label": "M", "options": ["x", "y"]},
             {"type": "checkbox", "key": "cb", "label": "CB"},
             {"type": "scale", "key": "s", "label": "S", "min": 0, "max": 10}]
    created = FormCreate.model_validate(form(every))
    assert [f.type for f in created.fields] == ["text", "textarea", "number", "number", "date", "choice",
                                                "multi_choice", "checkbox", "scale"]
    assert created.sharing.allow_others is False and created.sharing.author_sees_all_submissions is False
    assert FormCreate.model_validate({**form(every), "title": "  ok "}).title == "ok"
    with pytest.raises(ValidationError):
        FormCreate.model_validate({**form(every), "title": "  "})
