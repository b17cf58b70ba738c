"""Stopping what a service started: background tasks and child processes, one way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any and still running) and wait until it has finished."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def terminate(process: subprocess.Popen[Any] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM ``process``, and SIGKILL it if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
