"""Who may do what with a form and its submissions, as pure functions over plain data (SPEC section 6).

``viewer_offices`` is always the set of offices the viewer is a *practitioner* member of now (from the
identity projection, at read time): an office recipient means its current practitioners.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SharingRule:
    allow_others: bool = False
    practitioner_ids: frozenset[str] = frozenset()
    office_ids: frozenset[str] = frozenset()
    author_sees_all_submissions: bool = False
    others_see_all_submissions: bool = False

    @classmethod
    def of(cls, sharing: dict) -> "SharingRule":
        return cls(
            allow_others=bool(sharing.get("allow_others")),
            practitioner_ids=frozenset(sharing.get("practitioner_ids", ())),
            office_ids=frozenset(sharing.get("office_ids", ())),
            author_sees_all_submissions=bool(sharing.get("author_sees_all_submissions")),
            others_see_all_submissions=bool(sharing.get("others_see_all_submissions")),
        )


def is_shared_with(rule: SharingRule, author_id: str, viewer_id: str, viewer_offices: Iterable[str]) -> bool:
    """The form is currently shared with this (non-author) practitioner. Turning ``allow_others`` off
    withdraws every share at once, whatever the lists still say."""
    if viewer_id == author_id or not rule.allow_others:
        return False
    return viewer_id in rule.practitioner_ids or not rule.office_ids.isdisjoint(viewer_offices)


def can_administer(rule: SharingRule, author_id: str, viewer_id: str, viewer_offices: Iterable[str]) -> bool:
    """May see the form and assign it to patients in their care: its author and those it is shared with."""
    return viewer_id == author_id or is_shared_with(rule, author_id, viewer_id, viewer_offices)


def may_see_submission(rule: SharingRule, *, author_id: str, assigned_by: str | None, viewer_id: str,
                       viewer_offices: Iterable[str]) -> bool:
    """The one rule for submissions. The practitioner who assigned it, always; the author, only with
    ``author_sees_all_submissions``; a practitioner the form is shared with now, only with
    ``others_see_all_submissions``. Nobody else. ``assigned_by=None`` asks about a submission assigned by
    somebody else than the viewer (what a listing needs to know)."""
    if viewer_id == assigned_by:
        return True
    if viewer_id == author_id:
        return rule.author_sees_all_submissions
    return rule.others_see_all_submissions and is_shared_with(rule, author_id, viewer_id, viewer_offices)


def added_recipients(old: SharingRule | None, new: SharingRule) -> tuple[list[str], list[str]]:
    """Recipients who gain the form with this change (nobody gains it while ``allow_others`` is off)."""
    if not new.allow_others:
        return [], []
    before_p = old.practitioner_ids if old is not None and old.allow_others else frozenset()
    before_o = old.office_ids if old is not None and old.allow_others else frozenset()
    return sorted(new.practitioner_ids - before_p), sorted(new.office_ids - before_o)
