"""Who may do what with a form and its submissions, as pure functions over plain data (SPEC section 6).

``viewer_offices`` is always the set of offices the viewer is a *practitioner* member of now (from the
identity projection, at read time): an office recipient means its current practitioners.

A form's sharing reaches only recipients still on the author's sharing list (SPEC 10.1): every check is
made on the *live* rule, ``SharingRule.of(...).limited_to(author's sharing list now)``. ``grounds`` is the
one rule for "shared with": the read checks and "who can see this" both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.domain.sharing import SharingList, through_of


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


    def limited_to(self, sharer: SharingList) -> "SharingRule":
        """The rule as it stands now: recipients who left the author's sharing list (a deleted connection,
        an office the author left) are dropped."""
        return replace(self, practitioner_ids=frozenset(p for p in self.practitioner_ids if p in sharer.practitioners),
                       office_ids=frozenset(o for o in self.office_ids if o in sharer.offices))


RULE = "form"


def grounds(rule: SharingRule, *, form_id: str, author_id: str, viewer_id: str, viewer_offices: Iterable[str],
            via: SharingList | None = None) -> list[Ground]:
    """How a (live) rule shares the form with this non-author practitioner now: named, or through each
    office they are a practitioner member of. ``via`` (the author's sharing list) only names how a named
    practitioner is on it. Turning ``allow_others`` off withdraws every share at once."""
    if viewer_id == author_id or not rule.allow_others:
        return []
    out = []
    if viewer_id in rule.practitioner_ids:
        out.append(Ground(grant_id=form_id, rule=RULE,
                          through=through_of(via, viewer_id) if via is not None else "practitioner"))
    offices = set(viewer_offices)
    out += [Ground(grant_id=form_id, rule=RULE, through="office_membership", office_id=o)
            for o in sorted(rule.office_ids) if o in offices]
    return out


def is_shared_with(rule: SharingRule, author_id: str, viewer_id: str, viewer_offices: Iterable[str]) -> bool:
    """The form is currently shared with this (non-author) practitioner (``rule`` is the live rule)."""
    return bool(grounds(rule, form_id="", author_id=author_id, viewer_id=viewer_id, viewer_offices=viewer_offices))


def who_can_administer(rule: SharingRule, *, form_id: str, author_id: str,
                       rosters: Mapping[str, Mapping[str, str]], via: SharingList) -> dict[Reader, list[Ground]]:
    """Everyone but the author the live rule shares the form with now, office memberships expanded
    (``rosters``: office -> {account: role} now)."""
    candidates = set(rule.practitioner_ids) | {a for o in rule.office_ids for a in rosters.get(o, {})}
    out: dict[Reader, list[Ground]] = {}
    for account_id in sorted(candidates - {author_id}):
        offices = [o for o, m in rosters.items() if m.get(account_id) == "practitioner"]
        found = grounds(rule, form_id=form_id, author_id=author_id, viewer_id=account_id, viewer_offices=offices,
                        via=via)
        if found:
            out[Reader("practitioner", account_id)] = found
    return out


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
