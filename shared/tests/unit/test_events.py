import json
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from clinishare_shared.asyncapi import asyncapi_document
from clinishare_shared.context import current_correlation_id
from clinishare_shared.events import (
    EVENT_TYPES, IDENTITY_EVENT_TYPES, AccountRegistered, Envelope, EventData, OfficeCreated, make_event,
)

SAMPLES: dict[str, dict[str, Any]] = {
    "identity.account.registered": {"account_id": "a1", "kind": "practitioner", "name": "Dr A", "email": "a@x.org"},
    "identity.office.created": {"office_id": "o1", "owner_id": "a1", "name": "North clinic", "version": 1,
                                "members": [{"account_id": "a1", "role": "practitioner"}]},
    "identity.office.member_added": {"office_id": "o1", "account_id": "s1", "role": "staff", "version": 2,
                                     "members": [{"account_id": "a1", "role": "practitioner"},
                                                 {"account_id": "s1", "role": "staff"}]},
    "identity.office.member_removed": {"office_id": "o1", "account_id": "s1", "version": 3,
                                       "members": [{"account_id": "a1", "role": "practitioner"}]},
    "identity.connection.created": {"connection_id": "c1", "owner_id": "a1", "target_kind": "office",
                                    "target_id": "o2"},
    "identity.connection.deleted": {"connection_id": "c1", "owner_id": "a1", "target_kind": "office",
                                    "target_id": "o2", "deleted_by": "a1"},
    "identity.patient.registered": {"patient_id": "pt1", "registered_by": "a1", "version": 1, "care_team": ["a1"]},
    "identity.patient.care_team_changed": {"patient_id": "pt1", "changed_by": "a1", "version": 2,
                                           "care_team": ["a1", "a2"], "added": ["a2"]},
    "charts.share.granted": {"grant_id": "g1", "owner_id": "a1", "rule": "patient", "patient_id": "pt1",
                             "practitioner_ids": ["a2"], "office_ids": []},
    "charts.share.revoked": {"grant_id": "g1", "owner_id": "a1", "rule": "chart", "chart_id": "ch1",
                             "practitioner_ids": [], "office_ids": ["o1"]},
    "charts.note.added": {"note_id": "n1", "chart_id": "ch1", "chart_author_id": "a1", "author_id": "a2"},
    "documents.shared": {"document_id": "d1", "owner_id": "a1", "patient_ids": ["pt1"],
                         "offices": [{"office_id": "o1", "audience": "staff"}]},
    "documents.unshared": {"document_id": "d1", "owner_id": "a1", "practitioner_ids": ["a2"]},
    "forms.shared": {"form_id": "f1", "author_id": "a1", "allow_others": True, "practitioner_ids": ["a2"],
                     "office_ids": [], "added_practitioner_ids": ["a2"]},
    "forms.assigned": {"assignment_id": "as1", "form_id": "f1", "form_version": 3, "author_id": "a1",
                       "practitioner_id": "a2", "patient_id": "pt1"},
    "forms.submitted": {"submission_id": "sb1", "assignment_id": "as1", "form_id": "f1", "form_version": 3,
                        "author_id": "a1", "practitioner_id": "a2", "patient_id": "pt1", "author_may_see": False},
    # SPEC 10.1 / 10.2 / 10.5: expiry, access and lifecycle events
    "identity.share_pin.rotated": {"owner_kind": "office", "owner_id": "o1", "rotated_by": "a1"},
    "charts.share.expired": {"grant_id": "g1", "owner_id": "a1", "rule": "all", "practitioner_ids": ["a2"],
                             "office_ids": [], "expires_at": "2026-01-01T00:00:00Z"},
    "charts.chart.created": {"chart_id": "ch1", "author_id": "a1", "patient_id": "pt1"},
    "charts.chart.updated": {"chart_id": "ch1", "author_id": "a1", "patient_id": "pt1",
                             "changed_fields": ["body"]},
    "charts.chart.accessed": {"chart_id": "ch1", "patient_id": "pt1", "owner_id": "a1", "accessor_id": "a2",
                              "accessor_kind": "practitioner", "grant_ids": ["g1"]},
    "documents.share.expired": {"document_id": "d1", "owner_id": "a1", "practitioner_ids": ["a2"]},
    "documents.document.uploaded": {"document_id": "d1", "owner_id": "a1", "workspace_patient_id": "pt1",
                                    "size": 1234},
    "documents.document.deleted": {"document_id": "d1", "owner_id": "a1", "deleted_by": "a1"},
    "documents.document.accessed": {"document_id": "d1", "accessor_id": "pt1", "accessor_kind": "patient"},
    "forms.form.created": {"form_id": "f1", "author_id": "a1", "version": 1},
    "forms.form.updated": {"form_id": "f1", "author_id": "a1", "version": 2},
    "forms.submission.accessed": {"submission_id": "sb1", "form_id": "f1", "patient_id": "pt1", "owner_id": "a1",
                                  "accessor_id": "a2", "accessor_kind": "practitioner", "grant_ids": []},
}

SPEC_TYPES = {
    "identity.account.registered", "identity.office.created", "identity.office.member_added",
    "identity.office.member_removed", "identity.connection.created", "identity.connection.deleted",
    "identity.patient.registered", "identity.patient.care_team_changed", "charts.share.granted",
    "charts.share.revoked", "charts.note.added", "documents.shared", "documents.unshared", "forms.shared",
    "forms.assigned", "forms.submitted",
    # SPEC 10.5
    "charts.chart.created", "charts.chart.updated", "documents.document.uploaded", "documents.document.deleted",
    "forms.form.created", "forms.form.updated", "identity.share_pin.rotated", "charts.chart.accessed",
    "documents.document.accessed", "forms.submission.accessed", "charts.share.expired", "documents.share.expired",
}


def test_catalogue_is_the_spec_catalogue() -> None:
    assert set(EVENT_TYPES) == SPEC_TYPES == set(SAMPLES)
    assert IDENTITY_EVENT_TYPES == sorted(t for t in SPEC_TYPES if t.startswith("identity."))
    for t, model in EVENT_TYPES.items():
        assert model.event_type == t


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_round_trip_through_envelope_json(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    data = model.model_validate(SAMPLES[event_type])
    env = make_event(data, source=event_type.split(".")[0], subject="s1", correlation_id="corr-1")
    assert env.type == event_type and env.correlation_id == "corr-1" and env.schema_version == 1
    wire = env.model_dump_json()
    back = Envelope.model_validate_json(wire)
    assert back == env
    assert back.time == env.time and back.time.tzinfo is not None
    payload = back.payload()
    assert type(payload) is model and payload == data
    assert json.loads(wire)["data"] == data.model_dump(mode="json")


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_models_ignore_unknown_fields_and_never_carry_them(event_type: str) -> None:
    """Forward compatible readers (SPEC 10.5), and a field passed by mistake is dropped, not published."""
    data = EVENT_TYPES[event_type].model_validate({**SAMPLES[event_type], "patient_name": "Jane Doe"})
    assert "patient_name" not in data.model_dump()
    env = make_event(data, source="x", subject="y")
    assert "patient_name" not in env.data
    newer = Envelope.model_validate({**env.model_dump(), "data": {**env.data, "added_later": 1}})
    assert newer.payload() == data
    assert "additionalProperties" not in EVENT_TYPES[event_type].model_json_schema()


def test_envelope_ignores_unknown_fields_and_needs_its_own() -> None:
    env = make_event(EVENT_TYPES["charts.note.added"].model_validate(SAMPLES["charts.note.added"]),
                     source="charts", subject="ch1")
    # a newer publisher's envelope field is ignored (forward compatible), never carried on
    newer = Envelope.model_validate({**env.model_dump(), "trace_state": "x"})
    assert newer == env and "trace_state" not in newer.model_dump()
    with pytest.raises(ValidationError):
        Envelope.model_validate({k: v for k, v in env.model_dump().items() if k != "type"})


def test_make_event_ids_unique_and_correlation_from_context() -> None:
    import structlog

    data = EVENT_TYPES["charts.note.added"].model_validate(SAMPLES["charts.note.added"])
    with structlog.contextvars.bound_contextvars(correlation_id="req-77"):
        assert current_correlation_id() == "req-77"
        a, b = make_event(data, source="charts", subject="x"), make_event(data, source="charts", subject="x")
    assert a.correlation_id == b.correlation_id == "req-77"
    assert a.id != b.id and len(a.id) == 24


def _all_fields(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for f in model.model_fields.values():
        for arg in [f.annotation, *typing.get_args(f.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _all_fields(inner, seen)
    return names


PHI_LIKE = {"title", "body", "text", "content", "filename", "file_name", "answers", "answer", "patient_name",
            "date_of_birth", "dob", "birth_date", "diagnosis", "note", "notes", "label", "labels", "description",
            "first_name", "last_name", "address", "phone", "subject", "comment", "message"}


def test_no_event_field_looks_like_phi() -> None:
    for event_type, model in EVENT_TYPES.items():
        fields = _all_fields(model)
        assert not fields & PHI_LIKE, (event_type, fields & PHI_LIKE)
        names = {f for f in fields if "name" in f or "email" in f or "mail" in f}
        if model in (AccountRegistered, OfficeCreated):
            assert names <= {"name", "email"}
        else:
            assert not names, (event_type, names)


def test_patient_account_event_carries_no_name_or_email() -> None:
    AccountRegistered(account_id="pt1", kind="patient")
    with pytest.raises(ValidationError):
        AccountRegistered(account_id="pt1", kind="patient", name="Jane Doe")
    with pytest.raises(ValidationError):
        AccountRegistered(account_id="pt1", kind="patient", email="jane@example.org")


def test_event_data_is_frozen() -> None:
    data = EVENT_TYPES["charts.note.added"].model_validate(SAMPLES["charts.note.added"])
    with pytest.raises(ValidationError):
        data.note_id = "other"  # type: ignore[misc]
    assert issubclass(EVENT_TYPES["charts.note.added"], EventData)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_document() -> None:
    doc = json.loads(json.dumps(asyncapi_document()))  # valid JSON all the way down
    assert doc["asyncapi"].startswith("3.")
    stream = doc["channels"].pop("events_stream")
    assert {c["address"] for c in doc["channels"].values()} == set(EVENT_TYPES)
    doc["channels"]["events_stream"] = stream
    assert stream["address"] == "clinishare.events.stream"
    assert stream["bindings"]["amqp"]["is"] == "queue"
    assert len(stream["messages"]) == len(EVENT_TYPES)
    sends = {k: op for k, op in doc["operations"].items() if op["action"] == "send"}
    receives = {k: op for k, op in doc["operations"].items() if op["action"] == "receive"}
    assert len(sends) == len(EVENT_TYPES) and list(receives) == ["consume_events_stream"]
    assert len(receives["consume_events_stream"]["messages"]) == len(EVENT_TYPES)
    assert "x-stream-offset" in receives["consume_events_stream"]["description"]
    for key, channel in doc["channels"].items():
        if key != "events_stream":
            amqp = channel["bindings"]["amqp"]
            assert amqp["is"] == "routingKey" and amqp["exchange"]["name"] == "clinishare.events"
            assert amqp["exchange"]["type"] == "topic"
    server = doc["servers"]["broker"]
    assert server["protocol"] == "amqp" and server["security"]
    assert doc["components"]["securitySchemes"]["broker_user"]["type"] == "userPassword"
    delivery = doc["info"]["x-delivery"]
    assert delivery["guarantee"] == "at-least-once" and delivery["deduplicate_by"] == "id"
    assert "per subject" in delivery["ordering"]
    # one example per message, a valid envelope whose data validates against its model
    for message in doc["components"]["messages"].values():
        [example] = message["examples"]
        env = Envelope.model_validate(example["payload"])
        assert env.type == message["name"] and message["bindings"]["amqp"]["messageType"] == env.type
        assert type(env.payload()) is EVENT_TYPES[env.type]
        assert set(env.data) == set(EVENT_TYPES[env.type].model_fields)  # every field shown
    comps = doc["components"]
    assert set(comps) >= {"messages", "schemas"}
    assert "Envelope" in comps["schemas"]
    for model in EVENT_TYPES.values():
        assert model.__name__ in comps["schemas"]
    # every $ref resolves inside the document
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, f"dangling $ref {ref}"
            node = node[part]
    # the catalogue document is printable as a module
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "clinishare_shared.asyncapi"], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == doc
