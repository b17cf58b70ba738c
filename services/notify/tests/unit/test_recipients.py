"""Who hears of what: every consumed event type, offices by role and audience, de-duplication, the
actor never told of their own action."""

from __future__ import annotations

from clinishare_notify.domain.recipients import Office, Recipient, offices_needed, recipients
from clinishare_shared.events import (
    ChartNoteAdded, ChartShareGranted, ChartShareRevoked, ConnectionCreated, DocumentShared, DocumentUnshared,
    FormAssigned, FormShared, FormSubmitted, OfficeRecipient,
)

OFFICES = {
    "o1": Office(members={"alice": "practitioner", "bob": "practitioner", "sam": "staff"}, owner_id="bob"),
    "o2": Office(members={"carol": "practitioner", "sue": "staff", "owner": "practitioner"}, owner_id="owner"),
}


def ids(rs: list[Recipient]) -> list[str]:
    return [r.account_id for r in rs]


def grant(**kw: object) -> ChartShareGranted:
    base: dict[str, object] = dict(grant_id="g", owner_id="alice", rule="chart", chart_id="c",
                                   practitioner_ids=[], office_ids=[])
    return ChartShareGranted(**{**base, **kw})


class TestChartShare:
    def test_named_practitioners(self) -> None:
        assert ids(recipients(grant(practitioner_ids=["bob", "carol"]), OFFICES)) == ["bob", "carol"]

    def test_office_means_its_current_practitioners_not_staff(self) -> None:
        assert ids(recipients(grant(owner_id="zed", office_ids=["o1"]), OFFICES)) == ["alice", "bob"]

    def test_sharer_excluded_even_as_member_of_recipient_office(self) -> None:
        assert ids(recipients(grant(office_ids=["o1"]), OFFICES)) == ["bob"]

    def test_named_and_via_office_told_once(self) -> None:
        rs = recipients(grant(practitioner_ids=["bob", "carol"], office_ids=["o1", "o2"]), OFFICES)
        assert ids(rs) == ["bob", "carol", "owner"]
        assert all(r.kind == "practitioner" for r in rs)

    def test_unknown_office_has_nobody(self) -> None:
        assert recipients(grant(office_ids=["nowhere"]), OFFICES) == []
        assert offices_needed(grant(office_ids=["o1", "o2"])) == ["o1", "o2"]

    def test_a_revoked_grant_tells_its_recipients_not_the_sharer(self) -> None:
        revoked = ChartShareRevoked(**grant(practitioner_ids=["bob", "alice"]).model_dump(exclude={"expires_at"}))
        assert recipients(revoked, OFFICES) == [Recipient("bob", "practitioner")]

    def test_an_expired_grant_tells_the_sharer_too(self) -> None:
        from clinishare_shared.events import ChartShareExpired

        expired = ChartShareExpired(**grant(practitioner_ids=["bob"]).model_dump())
        assert recipients(expired, OFFICES) == [Recipient("alice", "practitioner"), Recipient("bob", "practitioner")]


def doc(**kw: object) -> DocumentShared:
    base: dict[str, object] = dict(document_id="d", owner_id="alice")
    return DocumentShared(**{**base, **kw})


class TestDocumentShare:
    def test_named_practitioners_and_patients(self) -> None:
        rs = recipients(doc(practitioner_ids=["carol"], patient_ids=["p1"]), OFFICES)
        assert rs == [Recipient("carol", "practitioner"), Recipient("p1", "patient")]

    def test_office_audience_practitioners(self) -> None:
        rs = recipients(doc(offices=[OfficeRecipient(office_id="o2", audience="practitioners")]), OFFICES)
        assert ids(rs) == ["carol", "owner"]

    def test_office_audience_staff(self) -> None:
        rs = recipients(doc(offices=[OfficeRecipient(office_id="o1", audience="staff"),
                                     OfficeRecipient(office_id="o2", audience="staff")]), OFFICES)
        assert rs == [Recipient("sam", "staff"), Recipient("sue", "staff")]

    def test_dedup_and_owner_excluded(self) -> None:
        rs = recipients(doc(practitioner_ids=["bob", "alice"],
                            offices=[OfficeRecipient(office_id="o1", audience="practitioners")]), OFFICES)
        assert ids(rs) == ["bob"]

    def test_workspace_patient_is_not_a_recipient_by_itself(self) -> None:
        assert recipients(doc(workspace_patient_id="p1", practitioner_ids=["bob"]), OFFICES) == [
            Recipient("bob", "practitioner")]

    def test_unshared_tells_the_recipients_it_removed(self) -> None:
        assert recipients(DocumentUnshared(document_id="d", owner_id="alice", practitioner_ids=["bob"]), OFFICES) == [
            Recipient("bob", "practitioner")]
        assert offices_needed(doc(offices=[OfficeRecipient(office_id="o1", audience="staff")])) == ["o1"]


def form(**kw: object) -> FormShared:
    base: dict[str, object] = dict(form_id="f", author_id="alice", allow_others=True, practitioner_ids=["bob"],
                                   office_ids=["o2"], added_practitioner_ids=[], added_office_ids=[])
    return FormShared(**{**base, **kw})


class TestFormShare:
    def test_only_added_practitioners_and_added_offices(self) -> None:
        rs = recipients(form(practitioner_ids=["bob", "carol"], added_practitioner_ids=["carol"],
                             office_ids=["o1", "o2"], added_office_ids=["o1"]), OFFICES)
        assert ids(rs) == ["carol", "bob"]  # alice (author) excluded, sam is staff, o2 was not added

    def test_nothing_added_nobody_told(self) -> None:
        assert recipients(form(), OFFICES) == []

    def test_allow_others_false_nobody_told(self) -> None:
        f = form(allow_others=False, added_practitioner_ids=["bob"], added_office_ids=["o2"])
        assert recipients(f, OFFICES) == []
        assert offices_needed(f) == []


def assigned() -> FormAssigned:
    return FormAssigned(assignment_id="a", form_id="f", form_version=1, author_id="alice", practitioner_id="bob",
                        patient_id="p1")


def submitted(**kw: object) -> FormSubmitted:
    base: dict[str, object] = dict(submission_id="s", assignment_id="a", form_id="f", form_version=1,
                                   author_id="alice", practitioner_id="bob", patient_id="p1", author_may_see=True)
    return FormSubmitted(**{**base, **kw})


class TestForms:
    def test_assigned_tells_the_patient(self) -> None:
        assert recipients(assigned(), OFFICES) == [Recipient("p1", "patient")]

    def test_submitted_assigner_and_author_who_may_see(self) -> None:
        assert ids(recipients(submitted(), OFFICES)) == ["bob", "alice"]

    def test_submitted_author_who_may_not_see(self) -> None:
        assert ids(recipients(submitted(author_may_see=False), OFFICES)) == ["bob"]

    def test_submitted_author_who_assigned_it_told_once(self) -> None:
        assert ids(recipients(submitted(practitioner_id="alice"), OFFICES)) == ["alice"]
        assert ids(recipients(submitted(practitioner_id="alice", author_may_see=False), OFFICES)) == ["alice"]


class TestNotesAndConnections:
    def test_note_by_someone_else_tells_the_chart_author(self) -> None:
        note = ChartNoteAdded(note_id="n", chart_id="c", chart_author_id="alice", author_id="bob")
        assert recipients(note, OFFICES) == [Recipient("alice", "practitioner")]

    def test_note_by_the_chart_author_tells_nobody(self) -> None:
        note = ChartNoteAdded(note_id="n", chart_id="c", chart_author_id="alice", author_id="alice")
        assert recipients(note, OFFICES) == []

    def test_connection_to_practitioner(self) -> None:
        c = ConnectionCreated(connection_id="x", owner_id="carol", target_kind="practitioner", target_id="bob")
        assert recipients(c, OFFICES) == [Recipient("bob", "practitioner")]
        assert offices_needed(c) == []

    def test_connection_to_office_tells_its_owner(self) -> None:
        c = ConnectionCreated(connection_id="x", owner_id="carol", target_kind="office", target_id="o1")
        assert offices_needed(c) == ["o1"]
        assert ids(recipients(c, OFFICES)) == ["bob"]

    def test_connection_to_office_by_its_owner_tells_nobody(self) -> None:
        c = ConnectionCreated(connection_id="x", owner_id="bob", target_kind="office", target_id="o1")
        assert recipients(c, OFFICES) == []

    def test_connection_to_office_without_known_owner_tells_its_practitioners(self) -> None:
        c = ConnectionCreated(connection_id="x", owner_id="alice", target_kind="office", target_id="o3")
        offices = {"o3": Office(members={"alice": "practitioner", "dan": "practitioner", "sam": "staff"})}
        assert ids(recipients(c, offices)) == ["dan"]
