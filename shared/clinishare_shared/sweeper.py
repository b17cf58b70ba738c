"""A periodic background task, started in a lifespan: e.g. the expiry sweeper of charts and documents.

Any number of replicas may run it at once: the work it calls must claim each item atomically (a
conditional single-document update that also stages the item's event in the outbox), so only one
replica's claim succeeds and each event is published once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from clinishare_shared.lifecycle import cancel_and_wait

log = structlog.get_logger("clinishare.sweeper")


class Sweeper:
    def __init__(self, name: str, work: Callable[[], Awaitable[int]], *, interval: float) -> None:
        self.name = name
        self.work = work
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        done = await self.work()
        if done:
            log.info("sweep_done", sweeper=self.name, items=done)
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep_failed", sweeper=self.name)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"sweeper-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
