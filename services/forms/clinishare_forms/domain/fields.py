"""Form fields: their definitions (a discriminated union on ``type``) and the validation of answers.

Pure: no I/O. ``validate_answers`` reports every bad field at once, so a patient fixes the whole form in
one go instead of one error per round trip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

FieldKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# CSV export columns beside the field keys; a field may not take their names.
RESERVED_KEYS = frozenset({"submitted_at", "patient_id", "practitioner_id"})


class _FieldBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: FieldKey
    label: Label
    required: bool = False


class TextField(_FieldBase):
    type: Literal["text"]
    max_length: int = Field(default=1000, ge=1, le=10_000)


class TextareaField(_FieldBase):
    type: Literal["textarea"]
    max_length: int = Field(default=10_000, ge=1, le=100_000)


class NumberField(_FieldBase):
    type: Literal["number"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> "NumberField":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("number field: min must not be greater than max")
        return self


class DateField(_FieldBase):
    type: Literal["date"]


class _Choices(_FieldBase):
    options: list[Option] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> "_Choices":
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be unique")
        return self


class ChoiceField(_Choices):
    type: Literal["choice"]


class MultiChoiceField(_Choices):
    type: Literal["multi_choice"]


class CheckboxField(_FieldBase):
    type: Literal["checkbox"]


class ScaleField(_FieldBase):
    type: Literal["scale"]
    min: int = Field(ge=-1000, le=1000)
    max: int = Field(ge=-1000, le=1000)

    @model_validator(mode="after")
    def _range(self) -> "ScaleField":
        if self.min >= self.max:
            raise ValueError("scale field: min must be less than max")
        return self


FormField = Annotated[
    TextField | TextareaField | NumberField | DateField | ChoiceField | MultiChoiceField | CheckboxField
    | ScaleField,
    Field(discriminator="type"),
]


def check_field_list(fields: Sequence[_FieldBase]) -> None:
    """Form-level rules over the field list (pydantic turns the ValueError into a 422)."""
    keys = [f.key for f in fields]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"field keys must be unique; repeated: {', '.join(dupes)}")
    reserved = sorted(set(keys) & RESERVED_KEYS)
    if reserved:
        raise ValueError(f"field keys reserved for the export: {', '.join(reserved)}")


# ---- answers --------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v)


def check_answer(field: _FieldBase, value: Any) -> tuple[Any, str | None]:
    """(normalised value, None) or (None, reason). ``value`` is present and not blank."""
    if isinstance(field, TextField | TextareaField):
        if not isinstance(value, str):
            return None, "must be a string"
        if len(value) > field.max_length:
            return None, f"must be at most {field.max_length} characters"
        return value, None
    if isinstance(field, NumberField):
        if not _is_number(value):
            return None, "must be a number"
        if field.min is not None and value < field.min:
            return None, f"must be at least {field.min:g}"
        if field.max is not None and value > field.max:
            return None, f"must be at most {field.max:g}"
        return value, None
    if isinstance(field, DateField):
        if not isinstance(value, str) or not _DATE.match(value):
            return None, "must be a date (YYYY-MM-DD)"
        try:
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            return None, "must be a valid calendar date"
    if isinstance(field, ChoiceField):
        if not isinstance(value, str) or value not in field.options:
            return None, "must be one of the options"
        return value, None
    if isinstance(field, MultiChoiceField):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, "must be a list of options"
        if any(v not in field.options for v in value):
            return None, "every choice must be one of the options"
        if len(set(value)) != len(value):
            return None, "choices must not repeat"
        return [o for o in field.options if o in value], None  # canonical order
    if isinstance(field, CheckboxField):
        if not isinstance(value, bool):
            return None, "must be true or false"
        if field.required and not value:
            return None, "required"  # a required checkbox is one that must be ticked (consent)
        return value, None
    if isinstance(field, ScaleField):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None, "must be a whole number"
        if not field.min <= value <= field.max:
            return None, f"must be between {field.min} and {field.max}"
        return value, None
    return None, "unsupported field type"  # pragma: no cover - the union is closed


def validate_answers(fields: Sequence[_FieldBase], answers: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(clean answers, errors). Errors list every bad field as ``{field, reason}``, in field order, then
    unknown keys. Blank optional answers are dropped from the clean answers."""
    errors: list[dict[str, str]] = []
    clean: dict[str, Any] = {}
    known = {f.key for f in fields}
    for field in fields:
        value = answers.get(field.key)
        if _is_blank(value):
            if field.required:
                errors.append({"field": field.key, "reason": "required"})
            continue
        normalised, reason = check_answer(field, value)
        if reason:
            errors.append({"field": field.key, "reason": reason})
        else:
            clean[field.key] = normalised
    errors += [{"field": k, "reason": "unknown field"} for k in answers if k not in known]
    return clean, errors
