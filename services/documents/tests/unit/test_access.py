"""The labelling and reading rules, exhaustively, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinishare_documents.domain.access import (
    DocFacts, ShareState, SharerFacts, Targets, apply_change, can_read, delete_decision, reader_keys,
    share_keys, validate_label_call,
)

ME = "me"
IN_CARE, OTHER_IN_CARE, NOT_IN_CARE = "pat-1", "pat-2", "pat-x"
COLLEAGUE, STRANGER = "dr-colleague", "dr-stranger"
OFFICE, OTHER_OFFICE = "office-1", "office-x"
SHARER = SharerFacts(patients_in_care=frozenset({IN_CARE, OTHER_IN_CARE}), practitioners=frozenset({COLLEAGUE}),
                     offices=frozenset({OFFICE}))
ALL_DOCS = DocFacts("doc-all", ME, None)
WORKSPACE = DocFacts("doc-ws", ME, IN_CARE)


def refusals(doc: DocFacts, add: Targets, remove: Targets = Targets()) -> list[tuple[str, str | None]]:
    found = validate_label_call([doc.id], {doc.id: doc}, caller_id=ME, add=add, remove=remove, sharer=SHARER)
    return [(r.target, r.document_id) for r in found]


# (document, targets to add, refused?) — workspace vs All Documents x patient / practitioner / office
CASES = [
    ("all-docs patient in care", ALL_DOCS, Targets(patient_ids=(IN_CARE,)), False),
    ("all-docs another patient in care", ALL_DOCS, Targets(patient_ids=(OTHER_IN_CARE,)), False),
    ("all-docs patient not in care", ALL_DOCS, Targets(patient_ids=(NOT_IN_CARE,)), True),
    ("all-docs practitioner on list", ALL_DOCS, Targets(practitioner_ids=(COLLEAGUE,)), False),
    ("all-docs practitioner off list", ALL_DOCS, Targets(practitioner_ids=(STRANGER,)), True),
    ("all-docs office on list, practitioners", ALL_DOCS, Targets(offices=((OFFICE, "practitioners"),)), False),
    ("all-docs office on list, staff", ALL_DOCS, Targets(offices=((OFFICE, "staff"),)), False),
    ("all-docs office off list", ALL_DOCS, Targets(offices=((OTHER_OFFICE, "staff"),)), True),
    ("all-docs office unknown audience", ALL_DOCS, Targets(offices=((OFFICE, "everyone"),)), True),
    ("workspace own patient", WORKSPACE, Targets(patient_ids=(IN_CARE,)), False),
    ("workspace other patient even in care", WORKSPACE, Targets(patient_ids=(OTHER_IN_CARE,)), True),
    ("workspace patient not in care", WORKSPACE, Targets(patient_ids=(NOT_IN_CARE,)), True),
    ("workspace practitioner on list", WORKSPACE, Targets(practitioner_ids=(COLLEAGUE,)), False),
    ("workspace practitioner off list", WORKSPACE, Targets(practitioner_ids=(STRANGER,)), True),
    ("workspace office on list", WORKSPACE, Targets(offices=((OFFICE, "practitioners"),)), False),
    ("workspace office off list", WORKSPACE, Targets(offices=((OTHER_OFFICE, "practitioners"),)), True),
    ("workspace office unknown audience", WORKSPACE, Targets(offices=((OFFICE, "all"),)), True),
    ("ordinary labels only", WORKSPACE, Targets(labels=("x-ray",)), False),
]


@pytest.mark.parametrize(("doc", "add", "refused"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_labelling_rule(doc: DocFacts, add: Targets, refused: bool) -> None:
    assert bool(refusals(doc, add)) is refused


def test_workspace_patient_refusal_names_the_document() -> None:
    assert refusals(WORKSPACE, Targets(patient_ids=(OTHER_IN_CARE,))) == [(f"patient:{OTHER_IN_CARE}", WORKSPACE.id)]


def test_workspace_patient_no_longer_in_care_is_refused() -> None:
    sharer = SharerFacts(practitioners=frozenset({COLLEAGUE}))
    found = validate_label_call([WORKSPACE.id], {WORKSPACE.id: WORKSPACE}, caller_id=ME,
                                add=Targets(patient_ids=(IN_CARE,)), remove=Targets(), sharer=sharer)
    assert [r.reason for r in found] == ["patient is not in the uploader's care"]


def test_unknown_and_not_owned_documents_are_refused_alike() -> None:
    theirs = DocFacts("doc-theirs", "someone-else", None)
    found = validate_label_call(["missing", theirs.id, ALL_DOCS.id], {theirs.id: theirs, ALL_DOCS.id: ALL_DOCS},
                                caller_id=ME, add=Targets(labels=("a",)), remove=Targets(), sharer=SHARER)
    assert [(r.target, r.reason) for r in found] == [
        ("document:missing", "document not found"), ("document:doc-theirs", "document not found")]


def test_one_bad_target_in_a_mixed_call_is_reported_with_all_others() -> None:
    found = validate_label_call(
        [ALL_DOCS.id, WORKSPACE.id], {ALL_DOCS.id: ALL_DOCS, WORKSPACE.id: WORKSPACE}, caller_id=ME,
        add=Targets(patient_ids=(IN_CARE,), practitioner_ids=(COLLEAGUE, STRANGER)), remove=Targets(), sharer=SHARER)
    assert {r.target for r in found} == {f"practitioner:{STRANGER}"}
    # the workspace document may take its own patient, so only the stranger is wrong


def test_removing_is_always_allowed_but_the_audience_must_be_known() -> None:
    remove = Targets(patient_ids=(NOT_IN_CARE,), practitioner_ids=(STRANGER,), offices=((OTHER_OFFICE, "staff"),))
    assert refusals(WORKSPACE, Targets(), remove) == []
    assert refusals(WORKSPACE, Targets(), Targets(offices=((OFFICE, "nobody"),))) == [(f"office:{OFFICE}", None)]


def test_adding_and_removing_the_same_target_is_refused() -> None:
    both = Targets(practitioner_ids=(COLLEAGUE,), labels=("a",))
    assert {t for t, _ in refusals(ALL_DOCS, both, both)} == {f"practitioner:{COLLEAGUE}", "label:a"}


def test_apply_reports_only_what_changed() -> None:
    before = ShareState.of(["p1"], ["d1"], [("o1", "staff")])
    change = apply_change(["keep", "old"], before,
                          add=Targets(labels=("new", "keep"), practitioner_ids=("d1", "d2"),
                                      offices=(("o1", "practitioners"),)),
                          remove=Targets(labels=("old",), patient_ids=("p1", "never-there")))
    assert change.labels == ("keep", "new")
    assert change.shares == ShareState.of([], ["d1", "d2"], [("o1", "staff"), ("o1", "practitioners")])
    assert change.added == ShareState.of([], ["d2"], [("o1", "practitioners")])
    assert change.removed == ShareState.of(["p1"])


def test_labels_alone_change_no_recipients() -> None:
    change = apply_change([], ShareState(), add=Targets(labels=("a",)), remove=Targets())
    assert change.changed([]) and not change.added and not change.removed
    assert not apply_change(["a"], ShareState(), add=Targets(labels=("a",)), remove=Targets()).changed(["a"])


ids = st.sets(st.sampled_from(["a", "b", "c", "d"]))
offices = st.sets(st.tuples(st.sampled_from(["o1", "o2"]), st.sampled_from(["practitioners", "staff"])))


def _recipients(patients: set, practitioners: set, offices: set) -> set[tuple[str, ...]]:
    """The oracle's plain view of recipients: one tuple per recipient, built without the code under test."""
    return ({("patient", p) for p in patients} | {("practitioner", d) for d in practitioners}
            | {("office", o, a) for o, a in offices})


labels = st.sets(st.sampled_from(["x-ray", "labs", "cardio"]))


@given(ids, ids, offices, ids, ids, offices, ids, ids, offices, labels, labels, labels)
def test_apply_matches_a_model_of_the_call(p0: set, d0: set, o0: set, pa: set, da: set, oa: set, pr: set, dr: set,
                                           orm: set, l0: set, la: set, lr: set) -> None:
    """Against an independent model: removals first, then additions; "added" is only what the document did
    not have, "removed" only what it had; labels keep their order and are not repeated."""
    old_labels = sorted(l0)
    change = apply_change(old_labels, ShareState.of(p0, d0, o0),
                          add=Targets(labels=tuple(sorted(la)), patient_ids=tuple(pa), practitioner_ids=tuple(da),
                                      offices=tuple(oa)),
                          remove=Targets(labels=tuple(sorted(lr)), patient_ids=tuple(pr),
                                         practitioner_ids=tuple(dr), offices=tuple(orm)))
    before = _recipients(p0, d0, o0)
    after = (before - _recipients(pr, dr, orm)) | _recipients(pa, da, oa)

    def seen(state: ShareState) -> set[tuple[str, ...]]:
        return _recipients(set(state.patient_ids), set(state.practitioner_ids), set(state.offices))

    assert seen(change.shares) == after
    assert seen(change.added) == after - before
    assert seen(change.removed) == before - after
    kept = [lbl for lbl in old_labels if lbl not in lr]
    assert list(change.labels) == kept + [lbl for lbl in sorted(la) if lbl not in kept]


# ---- reading ------------------------------------------------------------------------------------

DOC_KEYS = share_keys(ShareState.of(["pat-1"], ["dr-b"], [("o1", "staff"), ("o2", "practitioners")]))


@pytest.mark.parametrize(("who", "kind", "roles", "allowed"), [
    ("owner", "practitioner", {}, True),
    ("dr-b", "practitioner", {}, True),  # named directly
    ("dr-c", "practitioner", {}, False),
    ("dr-c", "practitioner", {"o2": "practitioner"}, True),  # practitioner of a practitioners-audience office
    ("dr-c", "practitioner", {"o1": "practitioner"}, False),  # o1 shares with its staff, not practitioners
    ("staff-1", "staff", {"o1": "staff"}, True),
    ("staff-1", "staff", {"o2": "staff"}, False),  # o2 shares with practitioners only
    ("staff-1", "staff", {}, False),  # left the office: access gone
    ("pat-1", "patient", {}, True),
    ("pat-2", "patient", {}, False),
    ("owner", "patient", {}, False),  # a patient token is never the owner
])
def test_who_can_read(who: str, kind: str, roles: dict, allowed: bool) -> None:
    assert can_read(owner_id="owner", keys=DOC_KEYS, account_id=who, kind=kind, office_roles=roles) is allowed


def test_reader_keys_match_share_keys_by_role() -> None:
    assert reader_keys("s", "staff", {"o1": "staff", "o2": "practitioner"}) == ["office:o1:staff",
                                                                               "office:o2:practitioners"]
    assert reader_keys("p", "patient", {"o1": "staff"}) == ["patient:p"]


def test_delete_decision() -> None:
    common = {"owner_id": "owner", "keys": DOC_KEYS, "office_roles": {}}
    assert delete_decision(account_id="owner", kind="practitioner", **common) == "allowed"
    assert delete_decision(account_id="dr-b", kind="practitioner", **common) == "forbidden"
    assert delete_decision(account_id="pat-1", kind="patient", **common) == "forbidden"
    assert delete_decision(account_id="dr-z", kind="practitioner", **common) == "not_found"
