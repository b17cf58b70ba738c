"""Who administers a form and who sees a submission: every flag combination against every kind of viewer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinishare_forms.domain.access import (
    SharingRule, added_recipients, can_administer, is_shared_with, may_see_submission,
)

AUTHOR, ASSIGNER, NAMED, OFFICE_MEMBER, OUTSIDER = "author", "assigner", "named", "member", "outsider"
OFFICE = "o1"
OFFICES = {OFFICE_MEMBER: {OFFICE}, AUTHOR: {OFFICE}}  # the author is in the shared office too


def rule(author_all: bool, others_all: bool, allow_others: bool = True) -> SharingRule:
    return SharingRule(allow_others=allow_others, practitioner_ids=frozenset({NAMED, ASSIGNER}),
                       office_ids=frozenset({OFFICE}), author_sees_all_submissions=author_all,
                       others_see_all_submissions=others_all)


def sees(r: SharingRule, viewer: str, assigned_by: str = ASSIGNER) -> bool:
    return may_see_submission(r, author_id=AUTHOR, assigned_by=assigned_by, viewer_id=viewer,
                              viewer_offices=OFFICES.get(viewer, set()))


FLAGS = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize("author_all,others_all", FLAGS)
@pytest.mark.parametrize("allow_others", [True, False])
def test_submission_of_an_assignment_made_by_a_shared_practitioner(author_all, others_all, allow_others):
    r = rule(author_all, others_all, allow_others)
    assert sees(r, ASSIGNER) is True  # always, even once the share is withdrawn
    assert sees(r, AUTHOR) is author_all  # being in the shared office does not make the author an "other"
    assert sees(r, NAMED) is (others_all and allow_others)
    assert sees(r, OFFICE_MEMBER) is (others_all and allow_others)
    assert sees(r, OUTSIDER) is False


@pytest.mark.parametrize("author_all,others_all", FLAGS)
def test_submission_of_an_assignment_made_by_the_author(author_all, others_all):
    r = rule(author_all, others_all)
    assert sees(r, AUTHOR, assigned_by=AUTHOR) is True
    assert sees(r, NAMED, assigned_by=AUTHOR) is others_all
    assert sees(r, OFFICE_MEMBER, assigned_by=AUTHOR) is others_all
    assert sees(r, OUTSIDER, assigned_by=AUTHOR) is False


def test_an_office_means_its_current_members():
    r = rule(False, True)
    assert may_see_submission(r, author_id=AUTHOR, assigned_by=ASSIGNER, viewer_id=OFFICE_MEMBER,
                              viewer_offices=set()) is False  # left the office
    assert can_administer(r, AUTHOR, OFFICE_MEMBER, {OFFICE}) and not can_administer(r, AUTHOR, OFFICE_MEMBER, {"o2"})


@pytest.mark.parametrize("allow_others", [True, False])
def test_who_administers(allow_others):
    r = rule(True, True, allow_others)
    assert can_administer(r, AUTHOR, AUTHOR, set()) is True
    for viewer in (NAMED, OFFICE_MEMBER):
        assert can_administer(r, AUTHOR, viewer, OFFICES.get(viewer, set())) is allow_others
    assert can_administer(r, AUTHOR, OUTSIDER, set()) is False
    assert is_shared_with(r, AUTHOR, AUTHOR, {OFFICE}) is False


ids = st.sampled_from(["p1", "p2", "p3", "author"])


@given(viewer=ids, assigned_by=ids, names=st.frozensets(ids), flags=st.tuples(st.booleans(), st.booleans(),
       st.booleans()), in_office=st.booleans())
def test_nobody_else_ever_sees_a_submission(viewer, assigned_by, names, flags, in_office):
    allow, author_all, others_all = flags
    r = SharingRule(allow_others=allow, practitioner_ids=names, office_ids=frozenset({"o"}),
                    author_sees_all_submissions=author_all, others_see_all_submissions=others_all)
    offices = {"o"} if in_office else set()
    seen = may_see_submission(r, author_id="author", assigned_by=assigned_by, viewer_id=viewer, viewer_offices=offices)
    allowed = (viewer == assigned_by or (viewer == "author" and author_all)
               or (viewer != "author" and others_all and allow and (viewer in names or in_office)))
    assert seen == allowed


def test_added_recipients():
    old = SharingRule(allow_others=True, practitioner_ids=frozenset({"b"}), office_ids=frozenset({"o"}))
    new = SharingRule(allow_others=True, practitioner_ids=frozenset({"b", "c"}), office_ids=frozenset({"o", "q"}))
    assert added_recipients(old, new) == (["c"], ["q"])
    assert added_recipients(None, new) == (["b", "c"], ["o", "q"])
    assert added_recipients(new, SharingRule(allow_others=False, practitioner_ids=new.practitioner_ids)) == ([], [])
    turned_on = SharingRule(allow_others=False, practitioner_ids=frozenset({"b"}))
    assert added_recipients(turned_on, old) == (["b"], ["o"])
