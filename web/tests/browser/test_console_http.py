"""The console over plain HTTP (no browser): pagination, the log-in redirect, the "not available" state
of a view the server does not offer, and that a page never shows what the API would not."""

from __future__ import annotations

import re

import httpx
import pytest

from support import PASSWORD, Console, Seed

pytestmark = pytest.mark.e2e


def logged_in(console: Console, email: str) -> httpx.Client:
    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"csrf_token": csrf, "email": email, "password": PASSWORD}).status_code == 303
    return client


def test_lists_are_paginated_with_a_next_page_link(console: Console) -> None:
    seed = Seed(console.url)
    alice = seed.account("Alice", "Pages")
    patient = seed.call("POST", "/v1/patients", alice["token"], json={"name": "Pat Many", "email": f"p.{seed.tag}@x.org"})
    for i in range(23):
        seed.call("POST", "/v1/charts", alice["token"], json={"patient_id": patient["id"], "title": f"Visit {i:02d}"})
    client = logged_in(console, alice["email"])
    first = client.get("/charts")
    titles = re.findall(r">Visit (\d\d)</a>", first.text)
    assert len(titles) == 20 and titles[0] == "22"  # newest first, the configured page size
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text).group(1)  # type: ignore[union-attr]
    second = client.get(next_link.replace("&amp;", "&"))
    assert re.findall(r">Visit (\d\d)</a>", second.text) == ["02", "01", "00"]
    assert 'rel="next"' not in second.text
    # the search keeps its pages too
    assert len(re.findall(r">Visit \d\d</a>", client.get("/charts?q=visit 1").text)) == 10


def test_a_page_needing_a_session_sends_to_log_in_and_back(console: Console) -> None:
    r = httpx.get(f"{console.url}/charts/shared-with-me?q=x")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fcharts%2Fshared-with-me%3Fq%3Dx"
    # and never onward to another site
    page = httpx.get(f"{console.url}/login?next=//evil.example/x")
    assert 'name="next" value=""' in page.text


def test_a_patient_cannot_open_practitioner_pages_and_a_practitioner_sees_no_one_elses_chart(console: Console) -> None:
    seed = Seed(console.url)
    alice, eve = seed.account("Alice", "Own"), seed.account("Eve", "Other")
    patient = seed.call("POST", "/v1/patients", alice["token"], json={"name": "Ann Lee", "email": f"a.{seed.tag}@x.org"})
    chart = seed.call("POST", "/v1/charts", alice["token"], json={"patient_id": patient["id"], "title": "Private"})
    eve_client = logged_in(console, eve["email"])
    for path in (f"/charts/{chart['id']}", f"/charts/{chart['id']}/share", f"/charts/{chart['id']}/access",
                 f"/patients/{patient['id']}"):
        r = eve_client.get(path)
        assert r.status_code == 404 and "Private" not in r.text and "Ann Lee" not in r.text, path


def test_disclosures_page_renders_the_accounting_of_the_audit_service(console: Console) -> None:
    import time

    seed = Seed(console.url)
    alice = seed.account("Alice", "Audit")
    patient = seed.call("POST", "/v1/patients", alice["token"], json={"name": "Cy Tan", "email": f"c.{seed.tag}@x.org"})
    url = f"{console.url}/v1/patients/{patient['id']}/disclosures"
    deadline = time.monotonic() + 15
    # audit learns of the new patient's care team from identity's events: eventually consistent
    while httpx.get(url, headers={"authorization": f"Bearer {alice['token']}"}).status_code != 200:
        assert time.monotonic() < deadline, "audit never learned of the patient"
        time.sleep(0.1)
    page = logged_in(console, alice["email"]).get(f"/patients/{patient['id']}/disclosures")
    assert page.status_code == 200 and 'data-testid="not-available"' not in page.text
    assert "Nothing recorded" in page.text and "hash chain verified" in page.text


def test_the_rendered_page_escapes_what_people_typed(console: Console) -> None:
    seed = Seed(console.url)
    alice = seed.account("Alice", "Escape")
    patient = seed.call("POST", "/v1/patients", alice["token"], json={
        "name": "<script>alert(1)</script>", "email": f"x.{seed.tag}@x.org"})
    page = logged_in(console, alice["email"]).get(f"/patients/{patient['id']}")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
