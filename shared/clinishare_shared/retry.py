"""One way to run an optimistic-concurrency loop: read, decide, write only if nothing changed since the
read; on a lost race read and decide again, a few times, then answer 409.

A step raises ``TryAgain`` when its version-checked write matched nothing. Between attempts there is a
short random pause (growing with each attempt, at most ``MAX_PAUSE``), so two callers that keep
colliding stop doing it in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from clinishare_shared.problems import Problem

T = TypeVar("T")
ATTEMPTS = 5
MAX_PAUSE = 0.05  # seconds: a loop with many attempts (audit's appends to one chain) never sleeps long


class TryAgain(Exception):
    """The step's write lost to a concurrent change: read again and decide again."""


async def optimistic(step: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS,
                     exhausted: Problem | None = None) -> T:
    """``await step()`` until it does not raise ``TryAgain``; after ``attempts`` raise ``exhausted``
    (default: 409, changed at the same time)."""
    for attempt in range(attempts):
        try:
            return await step()
        except TryAgain:
            if attempt + 1 < attempts:
                await asyncio.sleep(random.uniform(0, min(MAX_PAUSE, 0.002 * 2**attempt)))
    raise exhausted or Problem(409, "it was changed at the same time; try again")
