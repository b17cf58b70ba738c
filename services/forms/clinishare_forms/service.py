"""The forms service's use cases (keyword-only arguments): a form's sharing as it stands now, and who may
administer it (see it and assign it), both read from the identity projection at call time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clinishare_shared.projection import IdentityProjection

from clinishare_forms.domain.access import SharingRule, can_administer


async def live_rule(*, form: dict[str, Any], projection: IdentityProjection) -> SharingRule:
    """The form's sharing as it stands now: only recipients still on the author's sharing list."""
    return SharingRule.of(form["sharing"]).limited_to(await projection.sharing_list(form["author_id"]))


async def may_administer(*, form: dict[str, Any], projection: IdentityProjection, viewer_id: str,
                         viewer_offices: Iterable[str]) -> bool:
    if form["author_id"] == viewer_id:
        return True
    return can_administer(await live_rule(form=form, projection=projection), form["author_id"], viewer_id,
                          viewer_offices)
