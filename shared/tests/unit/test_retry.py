import asyncio

import pytest

from clinishare_shared import retry

from clinishare_shared.problems import Problem
from clinishare_shared.retry import TryAgain, optimistic


async def test_retries_until_the_step_wins() -> None:
    calls = []

    async def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TryAgain
        return "written"

    assert await optimistic(step) == "written"
    assert len(calls) == 3


async def test_gives_up_with_409_or_the_problem_given() -> None:
    calls = []

    async def step() -> None:
        calls.append(1)
        raise TryAgain

    with pytest.raises(Problem) as exc:
        await optimistic(step, attempts=4)
    assert exc.value.status == 409 and len(calls) == 4
    with pytest.raises(Problem) as exc:
        await optimistic(step, attempts=1, exhausted=Problem(503, "could not"))
    assert exc.value.status == 503


async def test_other_errors_are_not_retried() -> None:
    calls = []

    async def step() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError):
        await optimistic(step)
    assert len(calls) == 1


async def test_the_pause_between_attempts_is_short_however_many_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)  # the longest pause each time

    async def step() -> None:
        raise TryAgain

    with pytest.raises(Problem):
        await optimistic(step, attempts=40)
    assert len(pauses) == 39 and pauses[:3] == [0.002, 0.004, 0.008]
    assert max(pauses) == retry.MAX_PAUSE
