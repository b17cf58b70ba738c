"""The seed article's stories, by clicking, in a real browser."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from support import PASSWORD, Console, Person

# the whole system as a process and a real browser: the heaviest kind (clinishare_shared.pytest_markers)
pytestmark = pytest.mark.e2e


def reload_until(page: Any, text: str, timeout: float = 15.0) -> None:
    """The accounting of disclosures is built from events (eventually consistent): reload until it shows."""
    import time

    deadline = time.monotonic() + timeout
    while text not in page.locator("main").inner_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared on {page.url}"
        page.wait_for_timeout(200)
        page.reload()


def connect(alice: Person, bob: Person) -> str:
    """Bob opens the user menu's View Share PIN; Alice enters it under Connections."""
    page = bob.go("/charts")
    page.locator("summary[aria-label^='User menu']").click()
    page.get_by_role("link", name="View Share PIN").click()
    pin = page.get_by_test_id("share-pin").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", pin), pin
    page = alice.go("/connections")
    page.get_by_label("Share PIN of a practitioner or an office").fill(pin.lower())
    page.get_by_role("button", name="Connect").click()
    expect(page.locator(".flash")).to_contain_text(f"Connected to {bob.name}")
    expect(page.get_by_role("main")).to_contain_text(bob.name)  # the sharing list
    return pin


def register_patient(alice: Person, name: str, email: str) -> str:
    page = alice.go("/patients")
    page.get_by_label("Full name").fill(name)
    page.locator("#patient-email").fill(email)
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    return page.url.rsplit("/", 1)[1]


def write_chart(alice: Person, patient: str, title: str, body: str) -> str:
    page = alice.go("/charts")
    page.get_by_label("Patient", exact=True).select_option(label=patient)
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Chart", exact=True).fill(body)
    page.get_by_role("button", name="Save chart").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page.url.rsplit("/", 1)[1]


def test_two_practitioners_share_a_chart_add_a_note_and_revoke(people: Any) -> None:
    alice, bob = people("Alice", "Martin"), people("Bob", "Okafor")
    alice.sign_up()
    bob.sign_up()
    connect(alice, bob)
    register_patient(alice, "Jane Roe", "jane.roe@patient-mail.org")
    write_chart(alice, "Jane Roe", "Rash follow-up", "Itchy for two weeks.")
    write_chart(alice, "Jane Roe", "Knee pain", "Left knee, after running.")

    # Your Charts, search, the Share action of the row: the Chart Sharing Options dialog
    page = alice.go("/charts")
    page.get_by_label("Search by patient or title").fill("RASH")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.charts tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=re.compile("Share")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Chart Sharing Options")
    for rule in ("This Specific Chart", "All Of This Patient's Charts", "All Of My Charts"):
        expect(page.get_by_label(rule)).to_be_visible()
    page.get_by_label("This Specific Chart").check()
    page.get_by_label(bob.name).check()
    page.get_by_label("No", exact=True).check()
    page.get_by_role("button", name="Share Chart").click()
    # consent No: refused, with the API's message next to the consent question, nothing shared
    consent_error = page.locator("#patient_consent-error")
    expect(consent_error).to_contain_text("consent")
    expect(page.get_by_label(bob.name)).to_be_checked()  # what was chosen is kept
    page.get_by_label("Yes", exact=True).check()
    page.get_by_role("button", name="Share Chart").click()
    expect(page.locator(".flash")).to_contain_text("Shared")

    # Bob: Charts Shared With You, by search, opens it and adds a note
    page = bob.go("/charts")
    page.get_by_role("link", name="Charts Shared With You").click()
    page.get_by_label("Search by patient or title").fill("rash")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Rash follow-up", exact=True).click()
    expect(page.locator(".chart-body")).to_contain_text("Itchy for two weeks.")
    page.get_by_label("Add a note").fill("Agree: try an antihistamine.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notes")).to_contain_text("Agree: try an antihistamine.")
    # only that chart was shared
    page = bob.go("/charts/shared-with-me")
    expect(page.get_by_role("main")).not_to_contain_text("Knee pain")

    # Alice sees Bob's note on her chart, and a notification about it (the unread badge)
    page = alice.go("/charts?q=rash")
    page.get_by_role("link", name="Rash follow-up", exact=True).click()
    chart_url = page.url.removeprefix(alice.base)
    expect(page.locator(".notes")).to_contain_text("Agree: try an antihistamine.")
    expect(page.locator(".notes")).to_contain_text(bob.name)
    expect(page.get_by_test_id("unread-badge")).to_be_visible()

    # Who can see this: Bob, through the PIN connection; and Bob's read is in the access log
    page.get_by_role("link", name="Who can see this").click()
    readers = page.locator("table").first
    expect(readers).to_contain_text(bob.name)
    expect(readers).to_contain_text("connected by Share PIN")
    expect(page.get_by_role("main")).to_contain_text("Who read it")
    expect(page.locator("table").nth(1)).to_contain_text(bob.name)

    # the patient's accounting of disclosures: the share, and Bob's read, in a verified hash chain
    page = alice.go("/patients")
    page.get_by_role("link", name="Jane Roe").click()
    page.get_by_role("link", name="Disclosures").click()
    reload_until(page, "Read")
    rows = page.locator("tbody")
    expect(rows).to_contain_text("Shared")
    expect(rows).to_contain_text("Read")
    expect(rows).to_contain_text(bob.name)
    expect(page.get_by_test_id("chain")).to_contain_text("hash chain verified")

    # Alice stops the share (with a confirmation); it disappears from Bob's page
    page.locator("summary[aria-label^='User menu']").click()
    page.get_by_role("link", name="Chart shares").click()
    page.get_by_role("link", name="Stop sharing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Stop sharing?")
    page.get_by_role("button", name="Stop sharing").click()
    expect(page.locator(".flash")).to_contain_text("stopped")
    page = bob.go("/charts/shared-with-me")
    expect(page.get_by_role("main")).not_to_contain_text("Rash follow-up")
    expect(page.locator(".empty")).to_contain_text("No chart is shared with you")
    page = alice.go(chart_url + "/access")
    expect(page.get_by_role("main")).to_contain_text("Nobody else can see this chart")


def test_documents_labels_portal_and_smartform(people: Any, tmp_path: Path, console: Console) -> None:
    alice = people("Alice", "Nguyen")
    jane = people("Jane", "Doe")
    alice.sign_up()
    patient_email = jane.email
    register_patient(alice, "Jane Doe", patient_email)

    # two uploads to All Documents
    for name, text in (("labs.txt", "CBC: within normal limits\n"), ("xray.txt", "Chest X-ray: clear\n")):
        f = tmp_path / name
        f.write_text(text)
        page = alice.go("/documents")
        page.get_by_label("Upload to All Documents").set_input_files(str(f))
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.locator(".flash")).to_contain_text(f"Uploaded {name}")

    # Assign Labels appears only once something is selected; select both, patient share label for Jane
    page = alice.go("/documents")
    assign = page.get_by_role("button", name="Assign Labels")
    expect(assign).to_be_hidden()
    page.get_by_label("Select labs.txt").check()
    page.get_by_label("Select xray.txt").check()
    expect(assign).to_be_visible()
    assign.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Assign Labels")
    expect(page.get_by_role("heading", level=2)).to_have_text("2 documents selected")
    page.get_by_label("Add labels (comma-separated)").fill("labs, 2026")
    page.get_by_role("group", name="Patient Share Labels").get_by_label("Jane Doe").check()
    page.get_by_role("button", name="Apply Labels").click()
    expect(page.locator(".flash")).to_contain_text("Labels applied to 2 documents")
    expect(page.locator("tbody")).to_contain_text("patient: Jane Doe")

    # a SmartForm with a scale and a text field
    page = alice.go("/forms")
    page.get_by_role("link", name="Build a SmartForm").click()
    page.get_by_label("Form title").fill("Sleep check")
    page.locator("#f0_label").fill("Sleep quality")
    page.locator("#f0_type").select_option("scale")
    page.locator("#f0_min").fill("1")
    page.locator("#f0_max").fill("5")
    page.locator("[name=f0_required]").check()
    page.locator("#f1_label").fill("Anything else")
    page.locator("#f1_type").select_option("textarea")
    page.get_by_role("button", name="Save SmartForm").click()
    expect(page.locator(".flash")).to_contain_text("SmartForm saved")
    form_url = page.url
    page.get_by_label("Patient", exact=True).select_option(label="Jane Doe")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("Assigned")

    # the portal invite, shown as a link Alice gives to Jane
    page = alice.go("/patients")
    page.get_by_role("link", name="Jane Doe").click()
    page.get_by_role("button", name="Invite to the portal").click()
    link = page.get_by_test_id("invite-link").input_value()
    assert "/portal/activate?invite=" in link

    # Jane activates her portal from the link, sees both documents and fills the form
    page = jane.page
    page.goto(link)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator(".flash")).to_contain_text("Your portal is active")
    expect(page.get_by_role("main")).to_contain_text("labs.txt")
    expect(page.get_by_role("main")).to_contain_text("xray.txt")
    with page.expect_download() as download:
        page.get_by_role("link", name="labs.txt").first.click()
    assert Path(download.value.path()).read_text() == "CBC: within normal limits\n"
    # who saw my data: the accounting of disclosures names Alice's share of the documents with Jane
    page.get_by_role("link", name="Who saw my data").first.click()
    reload_until(page, "Shared")
    expect(page.locator("tbody")).to_contain_text("Shared")
    expect(page.locator("tbody")).to_contain_text(alice.name)
    page = jane.go("/portal")
    page.get_by_role("link", name="Sleep check").click()
    page.get_by_role("button", name="Send answers").click()  # required answer missing: refused, said at the field
    expect(page.locator("#quality-error, #sleep_quality-error")).to_contain_text("Required")
    page.get_by_label("4", exact=True).check()
    page.get_by_label("Anything else").fill("Wakes at 4am")
    page.get_by_role("button", name="Send answers").click()
    expect(page.locator(".flash")).to_contain_text("your answers were sent")
    expect(page.get_by_role("main")).to_contain_text("Nothing to fill in")

    # Alice sees the submission and downloads the CSV
    page = alice.go(form_url.removeprefix(console.url))
    page.get_by_role("link", name="Submissions").click()
    expect(page.locator("tbody")).to_contain_text("Wakes at 4am")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 1 and rows[0]["sleep_quality"] == "4" and rows[0]["anything_else"] == "Wakes at 4am"
