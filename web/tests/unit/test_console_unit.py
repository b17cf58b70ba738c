"""The console's pure parts: problem+json to field errors, e-mail links to console pages, the session
cookie, and the browser redirect of API links."""

from __future__ import annotations

import typing
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from clinishare_shared.events import EVENT_TYPES
from clinishare_shared.routes import browser_redirect
from clinishare_web.api import problem_error
from clinishare_web.app import PAGE_MODULES
from clinishare_web.links import console_path
from clinishare_web.session import COOKIE, Session, SessionCodec

ID = "0123456789abcdef01234567"


def test_request_validation_errors_go_to_the_field_named_last_in_loc() -> None:
    err = problem_error(422, {"detail": "the request is invalid", "errors": [
        {"loc": ["body", "password"], "msg": "String should have at least 10 characters"},
        {"loc": ["body", "sharing", "practitioner_ids", 0], "msg": "bad id"}]})
    assert err.fields == {"password": "String should have at least 10 characters", "practitioner_ids": "Bad id"}
    assert err.detail == "Please correct the fields marked below."


def test_a_model_level_error_goes_to_the_field_it_names_else_to_the_form() -> None:
    body = {"detail": "the request is invalid", "errors": [{"loc": ["body"], "msg": (
        "Value error, patient_consent must be true: the patient's consent is required to share charts")}]}
    assert problem_error(422, body, ("rule", "patient_consent")).fields == {
        "patient_consent": "patient_consent must be true: the patient's consent is required to share charts"}
    assert list(problem_error(422, body, ("rule",)).fields) == ["_form"]


def test_a_rule_refusal_without_a_field_list_goes_next_to_the_field_it_names() -> None:
    body = {"detail": "the password must be at least 10 characters long", "rule": "min_length"}
    assert problem_error(422, body, ("name", "email", "password")).fields == {
        "password": "The password must be at least 10 characters long"}
    assert problem_error(422, body, ("name",)).fields == {}
    assert problem_error(409, body, ("password",)).fields == {}  # only a 422 names a field


def test_answer_errors_and_plain_problems() -> None:
    err = problem_error(422, {"detail": "some answers are invalid",
                              "errors": [{"field": "quality", "reason": "required"}]})
    assert err.fields == {"quality": "Required"} and err.detail == "Some answers are invalid"
    plain = problem_error(404, {"detail": "no practitioner or office has this Share PIN"})
    assert plain.fields == {} and plain.detail == "No practitioner or office has this Share PIN"
    assert problem_error(502, "not json").detail == "The request failed (502)"


def _example(model: Any) -> Any:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        origin = typing.get_origin(ann)
        if ann is bool:
            values[name] = True
        elif ann is int:
            values[name] = 1
        elif ann is datetime:
            values[name] = datetime.now(timezone.utc)
        elif origin is typing.Literal:
            values[name] = typing.get_args(ann)[0]
        elif origin is list:
            values[name] = []
        else:
            values[name] = ID
    return model.model_construct(**values)


def _console_get_routes() -> list[Any]:
    return [r for m in PAGE_MODULES for r in m.router.routes if "GET" in getattr(r, "methods", set())]


def test_every_link_notify_builds_opens_a_console_page() -> None:
    messages = pytest.importorskip("clinishare_notify.domain.messages",
                                   reason="notify is one of the packages `make install` installs")
    recipients = pytest.importorskip("clinishare_notify.domain.recipients")
    routes = _console_get_routes()
    links = set()
    for model in EVENT_TYPES.values():
        for kind in ("practitioner", "staff", "patient"):
            try:
                notice = messages.notice(_example(model), recipients.Recipient(account_id=ID, kind=kind), "Dr A")
            except (ValueError, TypeError, AttributeError, KeyError):
                continue  # no notice for this event (or this recipient)
            links.add(notice.link)
    assert len(links) >= 6, links
    for link in links:
        path = console_path(link).split("?")[0]
        assert any(r.path_regex.match(path) for r in routes), f"{link} -> {path} is not a console page"


def test_console_path_only_leads_inside_the_console() -> None:
    assert console_path("/v1/charts/abc") == "/charts/abc"
    assert console_path("/portal/forms") == "/portal/forms"
    assert console_path("//evil.example/x") == "/notifications"
    assert console_path("https://evil.example/") == "/notifications"


def test_session_cookie_round_trips_encrypted_and_rejects_tampering() -> None:
    key = "a-long-random-session-secret-1"
    codec = SessionCodec(key, max_age=3600, secure="auto")
    s = Session()
    s.login(token="header.payload.signature", expires_in=900, account={"id": ID, "kind": "practitioner",
                                                                        "name": "Dr Alice Martin"})
    response = SimpleNamespace(cookies={})

    def set_cookie(name: str, value: str, **kw: Any) -> None:
        response.cookies[name] = (value, kw)

    response.set_cookie = set_cookie
    request = SimpleNamespace(url=SimpleNamespace(scheme="http"), headers={}, cookies={})
    codec.save(request, response, s)  # type: ignore[arg-type]
    value, flags = response.cookies[COOKIE]
    assert "header.payload" not in value
    assert flags["httponly"] and flags["samesite"] == "strict" and not flags["secure"]
    loaded = codec.load(SimpleNamespace(cookies={COOKIE: value}))  # type: ignore[arg-type]
    assert loaded.token == "header.payload.signature" and loaded.authenticated and loaded.initials == "DM"
    assert loaded.csrf_ok(s.csrf) and not loaded.csrf_ok("other") and not loaded.csrf_ok(None)
    tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    assert codec.load(SimpleNamespace(cookies={COOKIE: tampered})).token is None  # type: ignore[arg-type]
    other_key = SessionCodec("another-long-random-secret-2", max_age=3600, secure="auto")
    assert other_key.load(SimpleNamespace(cookies={COOKIE: value})).token is None  # type: ignore[arg-type]


def test_login_gives_a_new_csrf_token() -> None:
    s = Session()
    before = s.csrf
    s.login(token="t", expires_in=60, account={"id": ID, "kind": "patient", "name": "Jane"})
    assert s.csrf != before and not s.csrf_ok(before)


@pytest.mark.parametrize(("method", "headers", "expected"), [
    ("GET", {"accept": "text/html,application/xhtml+xml"}, "/charts/x"),
    ("GET", {"sec-fetch-dest": "document", "accept": "*/*"}, "/charts/x"),
    ("GET", {"accept": "application/json"}, None),
    ("GET", {"accept": "*/*"}, None),
    ("GET", {"accept": "text/html", "authorization": "Bearer t"}, None),
    ("POST", {"accept": "text/html"}, None),
    ("GET", {"sec-fetch-dest": "empty", "accept": "text/html"}, None),
])
def test_browser_redirect_only_for_navigations(method: str, headers: dict[str, str], expected: str | None) -> None:
    assert browser_redirect(method, "/v1/charts/x", headers) == expected
    assert browser_redirect(method, "/charts/x", headers) is None


def test_session_key_must_be_long_and_not_a_placeholder() -> None:
    from pydantic import ValidationError

    from clinishare_web.settings import WebSettings

    assert WebSettings(session_key="a-long-random-session-secret-1").session_key
    for bad in ("short", "changeme-changeme-changeme", "ChangeMe-web-session-key"):
        with pytest.raises(ValidationError):
            WebSettings(session_key=bad)


def test_disclosure_rows_name_who_did_what() -> None:
    from clinishare_web.pages.access import disclosure_rows

    shared, read = disclosure_rows([
        {"at": "2026-11-27T10:00:00Z", "action": "shared", "item_type": "chart", "rule": "patient",
         "discloser_id": "a", "discloser_name": "Dr A", "consent_attested_by": "a",
         "consent_attested_at": "2026-11-27T10:00:00Z",
         "recipients": [{"kind": "practitioner", "id": "b", "name": "Dr B"}, {"kind": "office", "id": "o"}]},
        {"at": "2026-11-27T11:00:00Z", "action": "accessed", "item_type": "document", "accessor_id": "b",
         "accessor_kind": "practitioner", "accessor_name": "Dr B", "discloser_name": "Dr A"}])
    assert (shared["event"], shared["by"], shared["to"], shared["what"], shared["rule"], shared["consent"]) == (
        "Shared", "Dr A", "Dr B, an office", "a chart", "All Of This Patient's Charts", "Dr A")
    assert (read["event"], read["by"], read["to"], read["what"]) == ("Read", "Dr B", "", "a document")


async def test_a_view_the_server_does_not_offer_is_not_available_not_an_error() -> None:
    from clinishare_web.api import ApiError
    from clinishare_web.pages.access import _or_unavailable

    async def missing() -> Any:
        raise ApiError(404, "no such endpoint")

    async def refused() -> Any:
        raise ApiError(403, "no")

    async def fine() -> Any:
        return {"items": []}

    assert await _or_unavailable(missing()) == (None, False)
    assert await _or_unavailable(fine()) == ({"items": []}, True)
    with pytest.raises(ApiError):
        await _or_unavailable(refused())
