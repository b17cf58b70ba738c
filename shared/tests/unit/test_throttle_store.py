"""The throttle against the database: an attempt must win a slot before it is answered, so parallel
attempts cannot pass the limit (the collection yields to the event loop around every call, as a real
server does, so the 50 attempts really interleave)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clinishare_shared.testing import yielding
from clinishare_shared.throttle import AttemptThrottle, Throttled

WINDOW = timedelta(minutes=15)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(db: Any, clock: Clock) -> AttemptThrottle:
    return AttemptThrottle(yielding(db)["attempts"], limit=10, window=WINDOW, clock=clock)


async def _guess(throttle: AttemptThrottle, key: str) -> bool:
    try:
        await throttle.begin(key)  # a wrong guess: the attempt stays counted
    except Throttled:
        return False
    return True


async def test_fifty_parallel_wrong_guesses_let_at_most_ten_through(throttle: AttemptThrottle) -> None:
    await throttle.ensure_indexes()
    passed = sum(await asyncio.gather(*(_guess(throttle, "acct-1") for _ in range(50))))
    assert passed == 10  # never more, and a burst is not refused beyond need either
    assert not await _guess(throttle, "acct-1")


async def test_refused_attempts_do_not_extend_the_lock_out(throttle: AttemptThrottle, clock: Clock) -> None:
    for _ in range(10):
        await throttle.begin("k")
        clock.now += timedelta(seconds=10)
    with pytest.raises(Throttled) as first:
        await throttle.begin("k")
    assert first.value.retry_after == 900 - 100
    clock.now += timedelta(seconds=first.value.retry_after - 1)
    with pytest.raises(Throttled) as again:
        await throttle.begin("k")
    assert again.value.retry_after == 1
    clock.now += timedelta(seconds=1)
    await throttle.begin("k")  # the oldest failure aged out; the refused attempts left nothing behind


async def test_right_guesses_stop_counting_and_keys_are_separate(throttle: AttemptThrottle) -> None:
    for _ in range(20):
        await (await throttle.begin("k")).succeeded()
    for _ in range(9):
        await throttle.begin("k")
    discarded = await throttle.begin("k")
    await discarded.discard()
    await throttle.begin("k")  # the tenth failure: the discarded one did not count
    with pytest.raises(Throttled):
        await throttle.begin("k")
    await throttle.begin("other")


async def test_expired_attempts_are_removed_as_the_key_is_used(throttle: AttemptThrottle, clock: Clock,
                                                               db: Any) -> None:
    for _ in range(5):
        await throttle.begin("k")
    clock.now += WINDOW
    await throttle.begin("k")
    assert await db["attempts"].count_documents({"key": "k"}) == 1
