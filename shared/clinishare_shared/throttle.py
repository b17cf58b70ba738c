"""Guess throttling (Share PIN look-ups, log-ins): at most ``limit`` failed guesses per key in a sliding
window, counted atomically so that parallel guesses cannot pass the limit.

An attempt is recorded first (one insert) and only then counts the key's other failed or still
unresolved attempts in the window. Every insert is done before its own count, so if ``limit`` attempts
were let through, any later one sees them all and is refused: however many arrive at once, at most
``limit`` wrong guesses get an answer. A refused attempt is removed again (it does not extend the
lock-out, so ``Retry-After`` stays honest); a right guess is marked and stops counting (it does not
reset earlier failures). Expired attempts of a key are removed as it is used: no TTL index needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
    """One counted attempt. A wrong guess needs nothing more: it stays counted."""

    def __init__(self, throttle: AttemptThrottle, attempt_id: str) -> None:
        self._throttle, self.id = throttle, attempt_id

    async def succeeded(self) -> None:
        """The guess was right: it stops counting."""
        await self._throttle.collection.update_one({"_id": self.id}, {"$set": {"ok": True}})

    async def discard(self) -> None:
        """Not a guess after all (malformed input): forget it."""
        await self._throttle.collection.delete_one({"_id": self.id})


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class AttemptThrottle:
    """Attempts live in ``collection``, one collection per use (``pin_lookups``, ``login_attempts``)."""

    def __init__(self, collection: Any, *, limit: int, window: timedelta,
                 clock: Callable[[], datetime] = now_ms) -> None:
        self.collection = collection
        self.limit = limit
        self.window = window
        self.now = clock

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("key", 1), ("at", -1)])

    async def begin(self, key: str) -> Attempt:
        """Record an attempt for ``key`` and let it through, or raise ``Throttled``."""
        now = self.now()
        attempt_id = new_id()
        await self.collection.insert_one({"_id": attempt_id, "key": key, "at": now, "ok": False})
        await self.collection.delete_many({"key": key, "at": {"$lte": now - self.window}})
        docs = await self.collection.find({"key": key, "ok": False, "at": {"$gt": now - self.window}},
                                          {"at": 1}).to_list()
        others = [_aware(d["at"]) for d in docs if d["_id"] != attempt_id]
        decision = throttle_decision(others, now=now, limit=self.limit, window=self.window)
        if not decision.allowed:
            await self.collection.delete_one({"_id": attempt_id})
            raise Throttled(decision.retry_after)
        return Attempt(self, attempt_id)
