"""Foreground and background work in one process.

An event being processed is foreground work: someone waits for its outcome (a notice in an inbox, a chart
on a sharing list). Some work of the same process can wait instead: notify's e-mails go out seconds after
their notice either way. On one event loop, both interleave at every database round trip, so eight
e-mails in delivery at once made each event wait behind them at each of its own round trips (the tail of
share -> notification processed). Background steps therefore ask ``quiet`` first: they wait while any
foreground work is in flight, at most ``max_wait`` each time, so under a steady stream of events they
slow down but never stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Foreground:
    def __init__(self) -> None:
        self._running = 0
        self.waiting = 0  # background steps waiting now
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        return self._running

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        """Around foreground work: background steps wait while it runs."""
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def quiet(self, max_wait: float) -> bool:
        """Before a background step: wait until no foreground work runs, at most ``max_wait`` seconds.
        True if it was quiet (at once or within the wait), False if the wait ran out."""
        if not self._running:
            return True
        self.waiting += 1
        try:
            async with asyncio.timeout(max_wait):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
