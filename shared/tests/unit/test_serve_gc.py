"""A served process freezes what it holds once started (``serve.FreezeAfterStartup``): full garbage
collections then walk only what requests and events create, instead of stopping the process for the
whole heap (the p99 of share -> notification was set by those pauses)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from clinishare_shared import serve


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def _lifespan(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    return sent


async def inner(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        assert gc.get_freeze_count() == 0  # start-up is still running: nothing frozen yet
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
    else:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_what_the_started_process_holds_is_frozen_once_start_up_completes() -> None:
    sent = await _lifespan(serve.FreezeAfterStartup(inner))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert gc.get_freeze_count() > 1000  # modules, classes, the test session: most of the heap


async def test_requests_pass_through_untouched_and_freeze_nothing() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await serve.FreezeAfterStartup(inner)({"type": "http"}, None, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert gc.get_freeze_count() == 0


def test_every_served_process_runs_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    serve.run(inner, serve.ProcessSettings(port=1234))
    assert isinstance(seen["app"], serve.FreezeAfterStartup) and seen["app"].app is inner and seen["port"] == 1234
