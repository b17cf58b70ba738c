"""The combined OpenAPI document (what clients are generated from) states the contract the API keeps:
stable operation ids, bearer auth where a token is needed, every error as problem+json, versions."""

import re
from typing import Any

import pytest

from clinishare_allinone.system import create_system
from clinishare_shared.openapi import combined_openapi
from clinishare_shared.problems import PROBLEM_JSON
from clinishare_shared.routes import SERVICES

PUBLIC = {"accounts.create", "auth.token", "portal.activate", "well_known.jwks_json.get"}
# ids clients are written against: renaming one breaks them, so they are pinned here
STABLE = {
    ("post", "/v1/charts"): "charts.create", ("get", "/v1/charts/{chart_id}"): "charts.get",
    ("patch", "/v1/charts/{chart_id}"): "charts.update", ("post", "/v1/charts/{chart_id}/notes"): "charts.notes.create",
    ("post", "/v1/documents/labels"): "documents.labels.apply", ("post", "/v1/documents"): "documents.create",
    ("post", "/v1/auth/token"): "auth.token", ("get", "/v1/me"): "me.get", ("get", "/v1/charts"): "charts.list",
    ("post", "/v1/chart-shares"): "chart_shares.create", ("post", "/v1/forms/{form_id}/assignments"):
    "forms.assignments.create", ("post", "/v1/me/share-pin/rotate"): "me.share_pin.rotate",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    system = create_system()
    return combined_openapi({name: system.services[name].openapi() for name in SERVICES})


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in document["paths"].items() for m, op in item.items()]


def test_operation_ids_are_stable_unique_and_dotted(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", i) for i in ids), ids
    found = {(m, p): op["operationId"] for m, p, op in operations(document)}
    assert {k: found.get(k) for k in STABLE} == STABLE


def test_bearer_auth_is_declared_exactly_where_a_token_is_needed(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "an access token from POST /v1/auth/token"}
    for method, path, op in operations(document):
        if op["operationId"] in PUBLIC:
            assert not op.get("security"), path
        else:
            assert op.get("security") == [{"bearerAuth": []}], (method, path)
            assert "401" in op["responses"], (method, path)


def test_every_error_is_declared_as_problem_json(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    for method, path, op in operations(document):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert {"422", "500"} <= set(errors), (method, path)
        for status, response in errors.items():
            assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}, \
                (method, path, status)
        if "{" in path:
            assert "404" in errors
        if "requestBody" in op:
            assert "413" in errors
    token = document["paths"]["/v1/auth/token"]["post"]["responses"]
    assert {"401", "429"} <= set(token)
    assert "412" in document["paths"]["/v1/charts/{chart_id}"]["patch"]["responses"]


def test_creates_declare_idempotency_key_and_patches_if_match(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in names) == (method == "post" and "201" in op["responses"]), (method, path)
    for path in ("/v1/charts/{chart_id}", "/v1/forms/{form_id}"):
        assert "If-Match" in {p["name"] for p in document["paths"][path]["patch"]["parameters"]}


def test_each_service_names_its_version_and_the_document_lists_them(document: dict[str, Any]) -> None:
    system = create_system()
    for name in SERVICES:
        info = system.services[name].openapi()["info"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"]) and name in info["title"]
        assert f"{name} {info['version']}" in document["info"]["description"]


async def test_the_all_in_one_process_serves_the_combined_document() -> None:
    import httpx

    from clinishare_shared.testing import LiveServer

    async with LiveServer(create_system()) as server, httpx.AsyncClient(base_url=server.url) as client:
        served = (await client.get("/openapi.json")).json()
    assert served["paths"].keys() == combined_openapi(
        {n: create_system().services[n].openapi() for n in SERVICES})["paths"].keys()
