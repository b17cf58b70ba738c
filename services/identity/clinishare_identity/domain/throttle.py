"""The PIN-guessing throttle as a pure rule: the caller supplies the failures and the clock."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    retry_after: int = 0  # whole seconds, only when not allowed


@dataclass(frozen=True)
class Lookup:
    at: datetime
    ok: bool


def pin_lookup_decision(lookups: Iterable[Lookup], *, now: datetime, limit: int = 10,
                        window: timedelta = timedelta(minutes=15)) -> ThrottleDecision:
    """``lookups`` are this account's earlier PIN look-ups (any order; successes and old ones ignored).
    With ``limit`` or more failures inside the window the look-up is refused until enough of them age
    out that fewer than ``limit`` remain: normally that is the oldest one."""
    recent = sorted(x.at for x in lookups if not x.ok and now - window < x.at <= now)
    if len(recent) < limit:
        return ThrottleDecision(allowed=True)
    frees_at = recent[len(recent) - limit] + window
    return ThrottleDecision(allowed=False, retry_after=max(1, math.ceil((frees_at - now).total_seconds())))
