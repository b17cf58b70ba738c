"""The console's protections, checked against the running system: CSRF on every form post, the session
cookie's flags, the access token never in a page or in reach of JavaScript, and the CSP on every page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from clinishare_web.app import PAGE_MODULES
from support import PASSWORD, Console, Seed

PAGES = ["/", "/login", "/signup", "/portal/activate", "/charts", "/charts/shared-with-me", "/documents", "/forms",
         "/forms/new", "/patients", "/offices", "/connections", "/sharing-list", "/share-pin", "/chart-shares",
         "/notifications", "/me"]

# the whole system as a process and a real browser: the heaviest kind (clinishare_shared.pytest_markers)
pytestmark = pytest.mark.e2e


def post_routes() -> list[str]:
    """Every POST the console accepts, with made-up ids (CSRF is checked before anything else)."""
    paths = []
    for route in (r for module in PAGE_MODULES for r in module.router.routes):
        if "POST" in getattr(route, "methods", set()):
            paths.append(re.sub(r"\{[^}]+\}", "0123456789abcdef01234567", route.path))  # type: ignore[attr-defined]
    return sorted(paths)


@pytest.fixture(scope="module")
def alice(console: Console) -> dict[str, Any]:
    return Seed(console.url).account("Alice", "Secure")


def logged_in(console: Console, account: dict[str, Any]) -> httpx.Client:
    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"csrf_token": csrf, "email": account["email"], "password": PASSWORD})
    assert r.status_code == 303, r.text
    return client


def test_every_form_post_without_or_with_a_wrong_csrf_token_is_refused(console: Console, alice: dict[str, Any]) -> None:
    client = logged_in(console, alice)
    routes = post_routes()
    assert len(routes) > 25  # all of them, not a sample
    for path in routes:
        missing = client.post(path, data={"name": "x"})
        wrong = client.post(path, data={"csrf_token": "not-the-token", "name": "x"})
        assert missing.status_code == 403, (path, missing.status_code)
        assert wrong.status_code == 403, (path, wrong.status_code)
    # and nothing happened: no office was created by the refused post to /offices
    assert "x" not in [o["name"] for o in httpx.get(f"{console.url}/v1/me", headers={
        "authorization": f"Bearer {alice['token']}"}).json()["offices"]]
    # an anonymous visitor is refused the same way (log-in CSRF)
    assert httpx.post(f"{console.url}/login", data={"email": alice["email"], "password": PASSWORD}).status_code == 403


def test_a_token_from_another_session_is_refused(console: Console, alice: dict[str, Any]) -> None:
    mine = logged_in(console, alice)
    other = httpx.Client(base_url=console.url)
    foreign = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/login").text).group(1)  # type: ignore[union-attr]
    assert mine.post("/offices", data={"csrf_token": foreign, "name": "Forged"}).status_code == 403


def test_session_cookie_is_httponly_samesite_strict_and_secure_behind_https(console: Console,
                                                                            alice: dict[str, Any]) -> None:
    r = httpx.get(f"{console.url}/login")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
    behind_tls = httpx.get(f"{console.url}/login", headers={"x-forwarded-proto": "https"})
    assert "Secure" in behind_tls.headers["set-cookie"]


def test_the_access_token_never_appears_in_a_page(console: Console, alice: dict[str, Any]) -> None:
    client = logged_in(console, alice)
    token = console.token_in(client.cookies["clinishare_session"])
    assert token and token.count(".") == 2  # the cookie does hold the session's token, encrypted
    assert token not in client.cookies["clinishare_session"]
    for path in PAGES:
        r = client.get(path)
        assert r.status_code in (200, 303), (path, r.status_code)
        assert token not in r.text and token not in str(r.headers), path
        for part in token.split("."):
            assert part not in r.text, path


def test_every_page_has_a_strict_csp_and_security_headers(console: Console, alice: dict[str, Any]) -> None:
    client = logged_in(console, alice)
    for path in [*PAGES, "/static/console.css", "/no-such-page"]:
        r = client.get(path)
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        if r.headers.get("content-type", "").startswith("text/html"):
            # nothing inline for the CSP to refuse: no <script> body, no style attribute, no on* handler
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), path
            assert not re.search(r"\sstyle=|\son[a-z]+=", r.text), path
            assert "http://" not in r.text.replace(console.url, "") and "https://" not in r.text, path  # no CDN


def test_javascript_cannot_read_the_session_cookie(people: Any, alice: dict[str, Any]) -> None:
    p = people("Alice")
    p.email = alice["email"]
    p.log_in(PASSWORD)
    assert p.page.evaluate("document.cookie") == ""
    cookie = next(c for c in p.context.cookies() if c["name"] == "clinishare_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_an_email_link_opened_in_a_browser_lands_on_the_console_page(people: Any, console: Console) -> None:
    seed = Seed(console.url)
    alice, bob = seed.account("Alice", "Mail"), seed.account("Bob", "Mail")
    pin = seed.call("GET", "/v1/me/share-pin", bob["token"])["pin"]
    seed.call("POST", "/v1/connections", alice["token"], json={"pin": pin})
    patient = seed.call("POST", "/v1/patients", alice["token"], json={"name": "Mia Lane", "email": f"mia.{seed.tag}@x.org"})
    chart = seed.call("POST", "/v1/charts", alice["token"], json={"patient_id": patient["id"], "title": "Cough"})
    seed.call("POST", "/v1/chart-shares", alice["token"], json={"rule": "chart", "chart_id": chart["id"],
                                                                 "practitioner_ids": [bob["id"]], "patient_consent": True})
    link = f"{console.url}/v1/charts/{chart['id']}"

    def mailed() -> bool:
        return any(link in m for m in console.mailbox.messages)

    import time
    deadline = time.monotonic() + 15
    while not mailed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mailed(), f"notify did not e-mail Bob the chart link: {console.mailbox.messages[-2:]}"
    # API clients still get the API (no redirect for a bearer token or a JSON accept)
    api = httpx.get(link, headers={"authorization": f"Bearer {bob['token']}"})
    assert api.status_code == 200 and api.json()["id"] == chart["id"]
    assert httpx.get(link, headers={"accept": "application/json"}).status_code == 401
    # the browser: the link, then log-in, then the chart's console page
    p = people("Bob")
    p.email = bob["email"]
    p.page.goto(link)
    assert p.page.url.startswith(f"{console.url}/login?next=")
    p.page.get_by_label("E-mail").fill(bob["email"])
    p.page.get_by_label("Password").fill(PASSWORD)
    p.page.get_by_role("button", name="Log in").click()
    p.page.wait_for_url(f"{console.url}/charts/{chart['id']}")
    assert p.page.get_by_role("heading", level=1).inner_text() == "Cough"
