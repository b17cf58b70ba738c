"""Every page, as each kind of person sees it: no serious or critical axe-core violation, and a
screenshot at desktop and phone width (artifacts/screenshots/)."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from support import PASSWORD, Console, Person, Seed, screenshot

AXE = Axe()
# WCAG 2.0-2.2 A and AA, and axe's best practices: every rule that can report serious or critical
AXE_OPTIONS = {"resultTypes": ["violations"], "runOnly": {"type": "tag", "values": [
    "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}}

# the whole system as a process and a real browser: the heaviest kind (clinishare_shared.pytest_markers)
pytestmark = pytest.mark.e2e


def check(page: Page, name: str, path: str | None = None, status: int = 200) -> None:
    if path is not None:
        response = page.goto(page.context.base + path)  # type: ignore[attr-defined]
        assert response is not None and response.status == status, (path, response and response.status)
    results = AXE.run(page, options=AXE_OPTIONS)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in bad)
    screenshot(page, name)


@pytest.fixture(scope="module")
def world(console: Console) -> dict[str, Any]:
    s = Seed(console.url)
    alice, bob = s.account("Alice", "Martin"), s.account("Bob", "Okafor")
    sam = s.account("Sam", "Reyes", kind="staff")
    pin = s.call("GET", "/v1/me/share-pin", bob["token"])["pin"]
    s.call("POST", "/v1/connections", alice["token"], json={"pin": pin})
    office = s.call("POST", "/v1/offices", alice["token"], json={"name": "Harbour Clinic"})
    s.call("POST", f"/v1/offices/{office['id']}/members", alice["token"], json={"email": sam["email"], "role": "staff"})
    jane_email = f"jane.{s.tag}@patient-mail.org"
    jane = s.call("POST", "/v1/patients", alice["token"], json={"name": "Jane Roe", "email": jane_email})
    chart = s.call("POST", "/v1/charts", alice["token"], json={"patient_id": jane["id"], "title": "Rash follow-up",
                                                               "body": "Itchy for two weeks.\nNo fever."})
    grant = s.call("POST", "/v1/chart-shares", alice["token"], json={
        "rule": "chart", "chart_id": chart["id"], "practitioner_ids": [bob["id"]], "office_ids": [],
        "patient_consent": True})
    s.call("POST", f"/v1/charts/{chart['id']}/notes", bob["token"], json={"text": "Agree: try an antihistamine."})
    docs = [s.call("POST", "/v1/documents", alice["token"], files={"file": (n, b"CBC: normal\n", "text/plain")},
                   data=data) for n, data in (("labs.txt", {}), ("xray.txt", {"patient_id": jane["id"]}))]
    s.call("POST", "/v1/documents/labels", alice["token"], json={
        "document_ids": [d["id"] for d in docs],
        "add": {"labels": ["labs"], "patient_ids": [jane["id"]], "practitioner_ids": [bob["id"]]}})
    form = s.call("POST", "/v1/forms", alice["token"], json={
        "title": "Sleep check", "fields": [
            {"type": "scale", "key": "quality", "label": "Sleep quality", "required": True, "min": 1, "max": 5},
            {"type": "choice", "key": "naps", "label": "Do you nap?", "options": ["Never", "Sometimes", "Daily"]},
            {"type": "multi_choice", "key": "issues", "label": "What happens at night?",
             "options": ["Snoring", "Waking up", "Bad dreams"]},
            {"type": "checkbox", "key": "caffeine", "label": "I drink coffee after 4pm"},
            {"type": "date", "key": "since", "label": "Since when?"},
            {"type": "number", "key": "hours", "label": "Hours per night", "min": 0, "max": 24},
            {"type": "text", "key": "med", "label": "Medication"},
            {"type": "textarea", "key": "notes", "label": "Anything else"}],
        "sharing": {"allow_others": True, "practitioner_ids": [bob["id"]], "office_ids": [],
                    "author_sees_all_submissions": True, "others_see_all_submissions": False}})
    invite = s.call("POST", f"/v1/patients/{jane['id']}/portal-invite", alice["token"])
    s.call("POST", "/v1/portal/activate", json={"invite_token": invite["invite_token"], "password": PASSWORD})
    jane_token = s.login(jane_email)
    first = s.call("POST", f"/v1/forms/{form['id']}/assignments", alice["token"], json={"patient_id": jane["id"]})
    s.call("POST", f"/v1/assignments/{first['id']}/submission", jane_token, json={"answers": {"quality": 4, "notes": "ok"}})
    pending = s.call("POST", f"/v1/forms/{form['id']}/assignments", alice["token"], json={"patient_id": jane["id"]})
    return {"alice": alice, "bob": bob, "sam": sam, "jane": {**jane, "email": jane_email}, "office": office,
            "chart": chart, "grant": grant, "docs": docs, "form": form, "pending": pending}


def person(people: Any, account: dict[str, Any]) -> Person:
    p = people(account["name"])
    p.email = account["email"]
    p.page.context.base = p.base  # type: ignore[attr-defined]
    return p.log_in(PASSWORD)


def test_anonymous_pages(people: Any) -> None:
    p = people("Visitor")
    p.page.context.base = p.base  # type: ignore[attr-defined]
    check(p.page, "welcome", "/")
    check(p.page, "login", "/login")
    check(p.page, "signup", "/signup")
    check(p.page, "portal activate", "/portal/activate")
    # errors next to the fields they concern, from the API's problem+json
    p.page.get_by_label("Your name", exact=False).count()
    p.go("/signup")
    p.page.get_by_label("Your name").fill("Dr Short")
    p.page.get_by_label("E-mail").fill("short@harbour-clinic.org")
    p.page.get_by_label("Password").fill("short")
    p.page.get_by_role("button", name="Create account").click()
    expect(p.page.locator("#password-error")).to_be_visible()
    check(p.page, "signup with errors")


def test_practitioner_pages(people: Any, world: dict[str, Any]) -> None:
    alice = person(people, world["alice"])
    page = alice.page
    chart, doc, form, office = world["chart"]["id"], world["docs"][0]["id"], world["form"]["id"], world["office"]["id"]
    jane = world["jane"]["id"]
    for name, path in [
        ("your charts", "/charts"), ("chart", f"/charts/{chart}"), ("chart sharing options", f"/charts/{chart}/share"),
        ("who can see this chart", f"/charts/{chart}/access"), ("chart shares", "/chart-shares"),
        ("stop sharing confirmation", f"/chart-shares/{world['grant']['id']}/revoke"), ("share pin", "/share-pin"),
        ("connections", "/connections"), ("sharing list", "/sharing-list"), ("offices", "/offices"),
        ("office", f"/offices/{office}"), ("patients", "/patients"), ("patient", f"/patients/{jane}"),
        ("patient disclosures", f"/patients/{jane}/disclosures"), ("all documents", "/documents"),
        ("patient workspace", f"/documents?patient_id={jane}"), ("document", f"/documents/{doc}"),
        ("who can see this document", f"/documents/{doc}/access"), ("smartforms", "/forms"),
        ("form builder", "/forms/new"), ("smartform", f"/forms/{form}"),
        ("submissions", f"/forms/{form}/submissions"), ("who can see this form", f"/forms/{form}/access"),
        ("notifications", "/notifications"), ("account", "/me"),
    ]:
        check(page, name, path)
    check(page, "not found", "/charts/000000000000000000000000", status=404)
    # the dialogs reached by clicking: the user menu, the Label Assignment Window, a refused share
    page.goto(alice.base + "/charts")
    page.locator("summary[aria-label^='User menu']").click()
    check(page, "user menu")
    page.goto(alice.base + "/documents")
    page.get_by_label("Select labs.txt").check()
    page.get_by_role("button", name="Assign Labels").click()
    check(page, "label assignment window")
    page.goto(alice.base + f"/charts/{chart}/share")
    page.get_by_role("button", name="Share Chart").click()
    expect(page.locator("#patient_consent-error")).to_be_visible()
    check(page, "chart sharing options refused")


def test_recipient_staff_and_patient_pages(people: Any, world: dict[str, Any]) -> None:
    bob = person(people, world["bob"])
    check(bob.page, "charts shared with you", "/charts/shared-with-me")
    check(bob.page, "documents shared with you", "/documents?scope=shared")
    check(bob.page, "shared chart with notes", f"/charts/{world['chart']['id']}")
    sam = person(people, world["sam"])
    check(sam.page, "staff office", f"/offices/{world['office']['id']}")
    jane = person(people, world["jane"])
    for name, path in [("portal", "/portal"), ("portal documents", "/portal/documents"),
                       ("portal forms", "/portal/forms"), ("portal fill a form", f"/portal/forms/{world['pending']['id']}"),
                       ("who saw my data", "/portal/disclosures"), ("portal account", "/portal/account")]:
        check(jane.page, name, path)
    jane.go(f"/portal/forms/{world['pending']['id']}")
    jane.page.get_by_role("button", name="Send answers").click()
    expect(jane.page.locator("#quality-error")).to_be_visible()
    check(jane.page, "portal form with errors")
