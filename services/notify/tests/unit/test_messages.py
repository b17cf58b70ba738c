"""What a notification and its e-mail say: the sharer's name, the kind of item and a link; no PHI."""

from __future__ import annotations

import pytest

from clinishare_notify.domain.messages import UNKNOWN_ACTOR, actor_of, display_name, email, notice
from clinishare_notify.domain.recipients import Recipient
from clinishare_shared.events import (
    ChartNoteAdded, ChartShareGranted, ConnectionCreated, DocumentShared, EventData, FormAssigned, FormShared,
    FormSubmitted,
)

PRACTITIONER, PATIENT = Recipient("rcpt", "practitioner"), Recipient("patient-77", "patient")
BASE = "https://clinishare.example"

CASES: list[tuple[EventData, Recipient, str, str]] = [
    (ChartShareGranted(grant_id="g", owner_id="dr", rule="chart", chart_id="chart-1", patient_id="patient-77",
                       practitioner_ids=["rcpt"], office_ids=[]), PRACTITIONER, "a chart", "/v1/charts/chart-1"),
    (ChartShareGranted(grant_id="g", owner_id="dr", rule="patient", patient_id="patient-77",
                       practitioner_ids=["rcpt"], office_ids=[]), PRACTITIONER, "a patient's charts",
     "/v1/charts/shared-with-me"),
    (ChartShareGranted(grant_id="g", owner_id="dr", rule="all", practitioner_ids=["rcpt"], office_ids=[]),
     PRACTITIONER, "all of their charts", "/v1/charts/shared-with-me"),
    (DocumentShared(document_id="doc-1", owner_id="dr", workspace_patient_id="patient-77",
                    practitioner_ids=["rcpt"]), PRACTITIONER, "a document", "/v1/documents/doc-1"),
    (DocumentShared(document_id="doc-1", owner_id="dr", workspace_patient_id="patient-77",
                    patient_ids=["patient-77"]), PATIENT, "a document", "/v1/portal/documents"),
    (FormShared(form_id="form-1", author_id="dr", allow_others=True, practitioner_ids=["rcpt"], office_ids=[],
                added_practitioner_ids=["rcpt"]), PRACTITIONER, "a SmartForm", "/v1/forms/form-1"),
    (FormAssigned(assignment_id="as-1", form_id="form-1", form_version=1, author_id="dr", practitioner_id="dr",
                  patient_id="patient-77"), PATIENT, "a SmartForm to fill in", "/v1/portal/forms"),
    (ChartNoteAdded(note_id="n-1", chart_id="chart-1", chart_author_id="rcpt", author_id="dr"), PRACTITIONER,
     "a chart note", "/v1/charts/chart-1"),
    (ConnectionCreated(connection_id="cx", owner_id="dr", target_kind="practitioner", target_id="rcpt"),
     PRACTITIONER, "a connection", "/v1/connections"),
]


@pytest.mark.parametrize(("data", "recipient", "item", "link"), CASES, ids=lambda v: getattr(v, "event_type", None))
def test_notice_and_email_name_sharer_kind_and_link_only(data: EventData, recipient: Recipient, item: str,
                                                         link: str) -> None:
    n = notice(data, recipient, "Dr. Ada Lovelace")
    assert (n.item, n.link) == (item, link)
    assert n.title.startswith("Dr. Ada Lovelace ")
    mail = email(n.title, n.item, n.link, base_url=BASE)
    assert "Dr. Ada Lovelace" in mail.subject and "Dr. Ada Lovelace" in mail.body
    assert f"{BASE}{link}" in mail.body
    assert item in mail.body
    # the patient is never identified, not even by id; nor are the other ids the event carries
    for text in (n.title, mail.subject, mail.body):
        assert "patient-77" not in text
        assert "as-1" not in text and "n-1" not in text and "cx" not in text


def test_submission_never_names_the_patient_who_submitted() -> None:
    data = FormSubmitted(submission_id="sub-1", assignment_id="as-1", form_id="form-1", form_version=1,
                         author_id="dr", practitioner_id="rcpt", patient_id="patient-77", author_may_see=True)
    assert actor_of(data) is None
    n = notice(data, PRACTITIONER, None)
    mail = email(n.title, n.item, n.link, base_url=BASE)
    assert n.link == "/v1/forms/form-1/submissions" and n.item == "a form submission"
    assert "patient-77" not in mail.body + mail.subject and "sub-1" not in mail.body
    assert f"{BASE}/v1/forms/form-1/submissions" in mail.body


def test_unknown_sharer_gets_a_neutral_name() -> None:
    data = ChartNoteAdded(note_id="n", chart_id="c", chart_author_id="rcpt", author_id="dr")
    assert notice(data, PRACTITIONER, None).title.startswith(UNKNOWN_ACTOR)


@pytest.mark.parametrize(("raw", "shown"), [
    ("Dr. Who\r\nBcc: victim@example.com", "Dr. Who Bcc: victim@example.com"),
    ("  Dr.\tHouse  ", "Dr. House"),
    ("\x00\u2028", UNKNOWN_ACTOR),
    ("x" * 500, "x" * 80),
])
def test_display_name_is_one_safe_line(raw: str, shown: str) -> None:
    assert display_name(raw) == shown
