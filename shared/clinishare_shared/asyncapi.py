"""The AsyncAPI 3 document of the event catalogue, generated from the pydantic models (for analytics).

It says where the events are (the broker, and how to authenticate), what each service sends (one
channel per routing key on the topic exchange), how to receive them (the replayable stream), one example
per message, and the delivery guarantee. ``docs/asyncapi.json`` is this document as last published; it
is also the previous contract that ``clinishare_shared.compat`` checks the models against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from clinishare_shared.bus.stream import stream_name
from clinishare_shared.events import EVENT_TYPES, EXCHANGE, SCHEMA_VERSION, Envelope, EventData

STREAM = stream_name(EXCHANGE)
EXAMPLE_TIME = "2026-03-02T09:30:00Z"

DELIVERY = {
    "guarantee": "at-least-once",
    "deduplicate_by": "id",
    "ordering": "per subject: the events about one record (the envelope's subject: a chart, grant, document, "
                "form, assignment, office, account, connection, patient) ride in that record's outbox and are "
                "published in the order they were written. charts.note.added, *.accessed and *.share.expired "
                "name the item as subject but are written in a record of their own (a note, an access, an "
                "expiry), so they are not ordered against the item's other events. Nothing is ordered across "
                "subjects: sort by time where it matters",
    "compatibility": "within a schema_version, fields are only ever added, and only as optional; readers "
                     "must ignore fields they do not know",
}


def _owner(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def _key(event_type: str) -> str:
    return event_type.replace(".", "_")


def _fake_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def _example_value(name: str, node: dict[str, Any], defs: Mapping[str, Any]) -> Any:
    if "$ref" in node:
        return _example_object(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        alternatives = [a for a in node["anyOf"] if a.get("type") != "null"]
        return _example_value(name, alternatives[0], defs) if alternatives else None
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "array":
        item = "body" if name == "changed_fields" else _example_value(name.removesuffix("s"), node["items"], defs)
        return [item]
    if kind == "object":
        return _example_object(node, defs) if "properties" in node else {}
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 1
    if node.get("format") == "date-time":
        return EXAMPLE_TIME
    if name == "email":
        return "dr.example@clinic.example"
    if name == "name":
        return "Example"
    return _fake_id(name)


def _example_object(schema: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _example_value(name, prop, defs) for name, prop in schema.get("properties", {}).items()}


def example_data(model: type[EventData]) -> dict[str, Any]:
    """A valid ``data`` for the model: every field filled with a plausible, PHI-free value."""
    schema = model.model_json_schema()
    data = _example_object(schema, schema.get("$defs", {}))
    return model.model_validate(data).model_dump(mode="json")


def example_envelope(event_type: str, model: type[EventData]) -> dict[str, Any]:
    data = example_data(model)
    subject = next((v for k, v in data.items() if k.endswith("_id") and isinstance(v, str)), _fake_id("subject"))
    return Envelope(id=_fake_id(f"event:{event_type}"), type=event_type, source=_owner(event_type),
                    time=EXAMPLE_TIME, subject=subject, data=data,  # type: ignore[arg-type]
                    correlation_id=_fake_id("request")).model_dump(mode="json")


def asyncapi_document(event_types: Mapping[str, type[EventData]] | None = None,
                      *, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The document for ``event_types`` (default: the whole catalogue). Tests pass synthetic catalogues."""
    catalogue = dict(EVENT_TYPES if event_types is None else event_types)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": Envelope.model_json_schema()}
    for event_type, model in sorted(catalogue.items()):
        key = _key(event_type)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
        messages[key] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip() or event_type,
            "contentType": "application/json",
            "correlationId": {"location": "$message.payload#/correlation_id"},
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"type": "object", "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                    }},
                ]
            },
            "bindings": {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}},
            "examples": [{"name": f"{key}_example", "summary": f"an example of {event_type}",
                          "payload": example_envelope(event_type, model)}],
        }
        channels[key] = {
            "address": event_type,
            "description": f"routing key {event_type} on the topic exchange {EXCHANGE}",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {
                "name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
                "bindingVersion": "0.3.0"}},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"published by the {_owner(event_type)} service, through its outbox",
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "timestamp": True,
                                  "bindingVersion": "0.3.0"}},
        }
    channels["events_stream"] = {
        "address": STREAM,
        "title": "The replayable event stream",
        "description": f"A RabbitMQ stream queue bound to every routing key (#) of {EXCHANGE}: every event "
                       "above, kept for the configured retention (EVENTS_STREAM_MAX_AGE_DAYS, default 30 "
                       "days). Reading does not remove anything: start from any offset ('first', 'last', "
                       "'next', a number) or a point in time.",
        "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
        "bindings": {"amqp": {"is": "queue", "queue": {
            "name": STREAM, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"},
            "bindingVersion": "0.3.0"}},
    }
    operations["consume_events_stream"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/events_stream"},
        "summary": "analytics read (and replay) every event from the stream",
        "description": "basic.consume with the argument x-stream-offset (an offset, 'first', 'next', or a "
                       "timestamp), a prefetch (basic.qos, required on a stream) and manual acks; the "
                       "x-stream-offset header of each message is its offset, to store and resume from. "
                       "Deduplicate by the envelope id: delivery is at least once.",
        "messages": [{"$ref": f"#/channels/events_stream/messages/{key}"} for key in messages],
        "bindings": {"amqp": {"ack": True, "bindingVersion": "0.3.0"}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Clinishare events",
            "version": str(version),
            "description": "Every Clinishare integration event. Envelope fields: id (unique; also the AMQP "
            "message_id), type (= routing key), source, time, subject, data, correlation_id, schema_version. "
            "Events carry ids and types, never PHI. Delivery is at least once: deduplicate by id. Order is "
            "kept per subject, not across subjects. Readers must ignore unknown fields.",
            "x-delivery": DELIVERY,
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ (3.10 or later; streams need no plugin over AMQP 0.9.1). The host "
                               "is the deployment's AMQP_URL; use amqps where the broker offers TLS.",
                "security": [{"$ref": "#/components/securitySchemes/broker_user"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {"broker_user": {
                "type": "userPassword",
                "description": "A RabbitMQ user and password (AMQP PLAIN). Give analytics a user of "
                               f"their own with read permission on {STREAM} only.",
            }},
        },
    }


def main() -> None:
    print(json.dumps(asyncapi_document(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
