import pytest

from clinishare_shared.openapi import combined_openapi, derive_operation_id


@pytest.mark.parametrize(("method", "path", "page", "expected"), [
    ("post", "/v1/charts", True, "charts.create"), ("get", "/v1/charts", True, "charts.list"),
    ("get", "/v1/charts/{chart_id}", False, "charts.get"), ("patch", "/v1/charts/{chart_id}", False, "charts.update"),
    ("delete", "/v1/chart-shares/{grant_id}", False, "chart_shares.delete"),
    ("post", "/v1/charts/{chart_id}/notes", False, "charts.notes.create"),
    ("post", "/v1/me/share-pin/rotate", False, "me.share_pin.rotate"), ("get", "/v1/me", False, "me.get"),
    ("post", "/v1/notifications/{notification_id}/read", False, "notifications.read"),
    ("put", "/v1/notification-preferences", False, "notification_preferences.replace"),
    ("get", "/v1/forms/{form_id}/submissions.csv", False, "forms.submissions_csv.get"),
])
def test_operation_ids_follow_the_path_and_method(method: str, path: str, page: bool, expected: str) -> None:
    assert derive_operation_id(method, path, page=page) == expected


def test_combining_keeps_v1_paths_and_renames_clashing_schemas() -> None:
    a = {"info": {"version": "1.0.0"}, "paths": {"/v1/a": {"get": {"responses": {"200": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}}}, "/healthz": {}},
        "components": {"schemas": {"Item": {"type": "object"}, "Problem": {"type": "object"}}}}
    b = {"info": {"version": "2.0.0"}, "paths": {"/v1/b": {"get": {"responses": {"200": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}}}},
        "components": {"schemas": {"Item": {"type": "string"}, "Problem": {"type": "object"}}}}
    merged = combined_openapi({"a": a, "b": b}, version="9.9.9")
    assert set(merged["paths"]) == {"/v1/a", "/v1/b"} and merged["info"]["version"] == "9.9.9"
    assert set(merged["components"]["schemas"]) == {"Item", "b_Item", "Problem"}
    ref = merged["paths"]["/v1/b"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/b_Item"
    with pytest.raises(ValueError, match="two services"):
        combined_openapi({"a": a, "again": a})
