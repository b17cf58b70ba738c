"""The OpenAPI contract clients are generated from (SPEC 10.3/10.4), the same for every service:

- stable ``operationId``s: ``<resource path>.<action>`` (``charts.create``, ``charts.notes.create``,
  ``charts.get``), or a route's own ``operation_id`` where a verb says more (``documents.labels.apply``);
- bearer auth on every route that needs it (declared by ``auth.get_principal`` through ``HTTPBearer``);
- every error a route can answer, as ``application/problem+json`` with the ``Problem`` schema (FastAPI's
  own ``HTTPValidationError`` schema is replaced: the API never answers it);
- the service's version, from its installed distribution.
``combined_openapi`` merges the services' documents into the one document the gateway serves.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from clinishare_shared.problems import PROBLEM_JSON, TITLES

BEARER = "bearerAuth"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Some problems add members: `errors` (invalid fields), "
                   "`invalid_ids` (recipients not on the sharing list), `rule` (the password rule broken), "
                   "`retry_after` (seconds, with 429).",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the problem type; about:blank for plain HTTP"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
_ACTIONS = {"get": "list", "post": "create", "put": "replace", "patch": "update", "delete": "delete"}
_VERBS = {"rotate", "read", "activate", "verify", "token"}


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s and s != "v1"]


def derive_operation_id(method: str, path: str, *, page: bool = True) -> str:
    """``GET /v1/charts`` (a page) → ``charts.list``; ``GET /v1/charts/{chart_id}`` or ``GET /v1/me`` (not
    a page) → ``charts.get``, ``me.get``; ``POST /v1/charts/{chart_id}/notes`` → ``charts.notes.create``;
    ``POST /v1/me/share-pin/rotate`` → ``me.share_pin.rotate``. Dots join the resource path, other
    characters become ``_``."""
    segments = _segments(path)
    names = [re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") for s in segments if not s.startswith("{")]
    method = method.lower()
    if method == "post" and names and names[-1] in _VERBS:
        return ".".join(names)
    if method == "get":
        action = "list" if page else "get"
    else:
        action = _ACTIONS.get(method, method)
    return ".".join([*names, action])


AUTO = "auto:"


def operation_id(route: APIRoute) -> str:
    """FastAPI's ``generate_unique_id_function``: a placeholder that ``shape`` replaces with the derived id
    (a route's own ``operation_id`` is kept as given)."""
    return AUTO + "_".join(sorted(route.methods or ())) + route.path_format


def _is_page(operation: Mapping[str, Any], schemas: Mapping[str, Any]) -> bool:
    schema = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}) \
        .get("schema", {})
    ref = schema.get("$ref", "")
    props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else schema.get("properties", {})
    return "items" in props and "next_cursor" in props


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _error_statuses(method: str, path: str, operation: Mapping[str, Any]) -> set[int]:
    """What any of our routes can answer besides its own success, from what it takes and needs."""
    # invalid input (ids, query, body, headers); the unexpected; a database or a service asked (identity,
    # the tie-breaker) not answering
    statuses = {422, 500, 503}
    secured = bool(operation.get("security"))
    if secured:
        statuses |= {401, 403, 404}  # no/bad token; wrong kind of account or not allowed; not visible
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(413)
    if method in ("post", "put", "patch", "delete"):
        statuses.add(409)
    if any(p.get("name", "").lower() == "if-match" for p in operation.get("parameters", [])):
        statuses.add(412)
    if method == "post" and "201" in operation.get("responses", {}):
        statuses.add(409)  # an Idempotency-Key still in use
    return statuses


def shape(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the error responses as problem+json, the Idempotency-Key header of creates, and the Problem
    schema; drop FastAPI's validation-error schemas (the API never answers them)."""
    doc = copy.deepcopy(document)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _ACTIONS:
                continue
            if operation.get("operationId", AUTO).startswith(AUTO):
                operation["operationId"] = derive_operation_id(method, path, page=_is_page(operation, schemas))
            responses = operation.setdefault("responses", {})
            for status in sorted(_error_statuses(method, path, operation)):
                existing = responses.get(str(status), {})
                responses[str(status)] = _problem_response(status, existing.get("description"))
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = _problem_response(int(status))["content"]
            if method == "post" and "201" in responses:
                params = operation.setdefault("parameters", [])
                if not any(p.get("name", "").lower() == "idempotency-key" for p in params):
                    params.append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {
                        "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
                        "description": "retries with the same key and body get the first answer (24 h, per "
                                       "caller); the same key with another body is 422"})
    return doc


def distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def install_contract(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the shaped document (cached, like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rename_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                name = v.rsplit("/", 1)[1]
                out[k] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[k] = _rename_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def combined_openapi(documents: Mapping[str, dict[str, Any]], *, title: str = "Clinishare API",
                     version: str | None = None) -> dict[str, Any]:
    """One document for the whole API (the gateway's, the all-in-one's) from each service's own,
    ``{"identity": doc, ...}``. Paths are taken from their owners (only ``/v1`` and the JWKS; each
    service's health and metrics stay in its own document); schemas that two services name alike but
    define differently are renamed ``<service>_<Name>`` in the document of the later one."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or distribution_version("clinishare-shared"),
                 "description": "The whole Clinishare API. Each service's own document: "
                                "/_services/<name>/openapi.json. Services: "
                                + ", ".join(f"{n} {d.get('info', {}).get('version', '?')}"
                                            for n, d in documents.items())},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "tags": [],
    }
    schemas = merged["components"]["schemas"]
    for service, document in documents.items():
        own = document.get("components", {}).get("schemas", {})
        renames = {name: f"{service}_{name}" for name, schema in own.items()
                   if name in schemas and schemas[name] != schema}
        document = _rename_refs(document, renames)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        merged["components"]["securitySchemes"].update(document.get("components", {}).get("securitySchemes", {}))
        for path, item in document.get("paths", {}).items():
            if not (path.startswith("/v1/") or path.startswith("/.well-known/")):
                continue
            if path in merged["paths"]:
                raise ValueError(f"{path} is served by two services")
            merged["paths"][path] = item
        known = {t["name"] for t in merged["tags"]}
        merged["tags"] += [t for t in document.get("tags", []) if t["name"] not in known]
    if not merged["tags"]:
        del merged["tags"]
    return merged
