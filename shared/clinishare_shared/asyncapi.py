"""An AsyncAPI 3 document for the event catalogue, generated from the pydantic models (for analytics)."""

from __future__ import annotations

import json
from typing import Any

from clinishare_shared.events import EVENT_TYPES, EXCHANGE, SCHEMA_VERSION, Envelope


def _owner(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": Envelope.model_json_schema()}
    for event_type, model in sorted(EVENT_TYPES.items()):
        key = event_type.replace(".", "_")
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
        messages[key] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip() or event_type,
            "contentType": "application/json",
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"type": "object", "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                    }},
                ]
            },
        }
        channels[key] = {
            "address": event_type,
            "description": f"routing key {event_type} on topic exchange {EXCHANGE}",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {
                "name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False}}},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"published by the {_owner(event_type)} service",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Clinishare events",
            "version": str(SCHEMA_VERSION),
            "description": "Every Clinishare integration event. Envelope fields: id (unique; also the AMQP "
            "message_id), type (= routing key), source, time, subject, data, correlation_id, schema_version. "
            "Events carry ids and types, never PHI.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def main() -> None:
    print(json.dumps(asyncapi_document(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
