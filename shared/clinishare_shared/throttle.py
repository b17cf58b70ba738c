"""Guess throttling (Share PIN look-ups, log-ins): at most ``limit`` failed guesses per key in a sliding
window, counted atomically so that parallel guesses cannot pass the limit.

Each key has ``limit`` slots, one document each with a fixed ``_id`` (``<key>#<n>``). An attempt is let
through only once it holds a slot, taken by inserting that document: the unique ``_id`` lets exactly one
insert win, on every engine (no multi-document transaction, no atomic read-modify-write needed). So
however many guesses arrive at once, at most ``limit`` get an answer, and when no slot is held exactly
``limit`` do. A wrong guess keeps its slot until the window has passed (then the next attempt frees it);
a right guess, or input that was no guess at all, gives its slot back at once. A refused attempt holds
nothing, so it does not extend the lock-out and ``Retry-After`` stays honest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.problems import Problem


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    retry_after: int = 0  # whole seconds, only when not allowed


def throttle_decision(failures: Iterable[datetime], *, now: datetime, limit: int,
                      window: timedelta) -> ThrottleDecision:
    """The pure rule. ``failures`` are the key's other failed (or unresolved) attempts, any order; those
    older than the window are ignored (a parallel attempt's clock may be a little ahead of ``now``: it
    still counts). With ``limit`` or more the attempt is refused until enough age out that fewer than
    ``limit`` remain."""
    recent = sorted(at for at in failures if now - window < at)
    if len(recent) < limit:
        return ThrottleDecision(allowed=True)
    frees_at = recent[len(recent) - limit] + window
    wait = math.ceil((frees_at - now).total_seconds())
    # never more than one window: an attempt stamped a millisecond ahead must not ask for 901 s of 900
    return ThrottleDecision(allowed=False, retry_after=min(max(1, wait), math.ceil(window.total_seconds())))


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"throttled for {retry_after} s")
        self.retry_after = retry_after

    def problem(self, detail: str) -> Problem:
        """The 429 answer, with ``Retry-After`` in the header and in the body."""
        return Problem(429, detail, headers={"Retry-After": str(self.retry_after)}, retry_after=self.retry_after)


class Attempt:
    """One counted attempt, holding a slot. A wrong guess needs nothing more: the slot stays taken."""

    def __init__(self, throttle: AttemptThrottle, slot_id: str, attempt_id: str) -> None:
        self._throttle, self.slot_id, self.id = throttle, slot_id, attempt_id

    async def succeeded(self) -> None:
        """The guess was right: it stops counting."""
        await self._release()

    async def discard(self) -> None:
        """Not a guess after all (malformed input): forget it."""
        await self._release()

    async def _release(self) -> None:
        await self._throttle.collection.delete_one({"_id": self.slot_id, "attempt": self.id})


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class AttemptThrottle:
    """Slots live in ``collection``, one collection per use (``pin_lookups``, ``login_attempts``)."""

    def __init__(self, collection: Any, *, limit: int, window: timedelta,
                 clock: Callable[[], datetime] = now_ms) -> None:
        self.collection = collection
        self.limit = limit
        self.window = window
        self.now = clock

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("key", 1), ("at", -1)])

    async def begin(self, key: str) -> Attempt:
        """Take a slot for an attempt on ``key`` and let it through, or raise ``Throttled``."""
        now = self.now()
        attempt_id = new_id()
        # slots whose failure has left the window are free again
        await self.collection.delete_many({"key": key, "at": {"$lte": now - self.window}})
        for n in range(self.limit):
            slot_id = f"{key}#{n}"
            try:
                await self.collection.insert_one({"_id": slot_id, "key": key, "at": now, "attempt": attempt_id})
            except DuplicateKeyError:
                continue  # held by another attempt (perhaps a parallel one that won this insert)
            return Attempt(self, slot_id, attempt_id)
        held = [_aware(d["at"]) for d in await self.collection.find({"key": key}, {"at": 1}).to_list()]
        decision = throttle_decision(held, now=now, limit=self.limit, window=self.window)
        # a slot freed since the loop passed it (a right guess) still refuses this attempt: try again in 1 s
        raise Throttled(decision.retry_after if not decision.allowed else 1)
