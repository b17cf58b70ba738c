"""What every request and every event pays before its own work: the span, the two HTTP series and the log
line. Each is made cheaper here without changing what it records: no span machinery when nothing would be
recorded or passed on, the metric children made once, one JSON encoder for every log line."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clinishare_shared import observability
from clinishare_shared.logging import json_renderer
from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.observability import (
    EVENTS_CONSUMED, EVENTS_FAILED, HTTP_REQUESTS, carrier, consuming, publishing, server_span,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
EVENT = SimpleNamespace(type="charts.share.granted", id="evt-frame-1")


class NoSpans:
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a span was started with nothing to record and no trace to pass on")


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API alone (no SDK provider), whatever another test of this process installed."""
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """An SDK provider installed for this test only."""
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(observability, "tracer", provider.get_tracer("test"))
    return exporter


def counted(metric: Any, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


def test_without_an_sdk_or_an_incoming_trace_no_span_is_started(no_sdk: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "tracer", NoSpans())
    with server_span("GET", {}) as span:
        assert span is trace.INVALID_SPAN and not span.is_recording()
        span.update_name("GET /v1/charts")  # the middleware's calls are no-ops on it
        span.set_attribute("http.route", "/v1/charts")
        assert carrier() == {}, "nothing is injected into outgoing calls or staged events"
    with publishing(EVENT, None) as span:
        assert span is trace.INVALID_SPAN
    queue = "frame.test"
    consumed, failed = counted(EVENTS_CONSUMED, queue, EVENT.type), counted(EVENTS_FAILED, queue, EVENT.type)
    with consuming(queue, EVENT, {"x-death": []}) as span:
        assert span is trace.INVALID_SPAN
    with pytest.raises(RuntimeError), consuming(queue, EVENT, None):
        raise RuntimeError("handler failed")
    assert counted(EVENTS_CONSUMED, queue, EVENT.type) == consumed + 1, "a handled event is still counted"
    assert counted(EVENTS_FAILED, queue, EVENT.type) == failed + 1, "a failed one too"


@pytest.mark.parametrize("where", ["request", "staged", "message"])
def test_an_incoming_trace_is_still_passed_on_without_an_sdk(no_sdk: None, where: str) -> None:
    contexts = {"request": lambda: server_span("GET", {"traceparent": TRACEPARENT}),
                "staged": lambda: publishing(EVENT, {"traceparent": TRACEPARENT}),
                "message": lambda: consuming("frame.test", EVENT, {"Traceparent": TRACEPARENT.encode()})}
    with contexts[where]() as span:
        assert not span.is_recording()
        assert TRACE_ID in carrier().get("traceparent", ""), "the caller's trace goes on downstream"


def test_with_an_sdk_every_request_and_event_has_its_span(recorded: InMemorySpanExporter) -> None:
    with server_span("GET", {}) as span:
        assert span.is_recording()
        assert carrier()["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
    with publishing(EVENT, None):
        pass
    with consuming("frame.test", EVENT, None):
        pass
    kinds = [s.kind for s in recorded.get_finished_spans()]
    assert kinds == [trace.SpanKind.SERVER, trace.SpanKind.PRODUCER, trace.SpanKind.CONSUMER]


def test_request_series_are_counted_per_route_method_and_status() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.add_middleware(RequestContextMiddleware, service="frame-test")
    labels = ("frame-test", "GET", "/items/{item_id}", "200")
    ok, missing = counted(HTTP_REQUESTS, *labels), counted(HTTP_REQUESTS, "frame-test", "GET", "unmatched", "404")
    other = counted(HTTP_REQUESTS, "frame-test", "other", "unmatched", "404")
    with TestClient(app) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").status_code == 200
        assert client.get("/nothing/here").status_code == 404
        client.request("BREW", "/nothing/here")
        client.request("MKCOFFEE", "/nothing/here")
    assert counted(HTTP_REQUESTS, *labels) == ok + 3, "the cached child is the series the scrape shows"
    assert counted(HTTP_REQUESTS, "frame-test", "GET", "unmatched", "404") == missing + 1
    assert counted(HTTP_REQUESTS, "frame-test", "other", "unmatched", "404") == other + 2, \
        "made-up methods share one series"
    assert not any(s.labels.get("method") in ("BREW", "MKCOFFEE")
                   for family in HTTP_REQUESTS.collect() for s in family.samples)


class Described:
    def __structlog__(self) -> str:
        return "described"


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_log_lines_render_as_structlog_json_renderer_does() -> None:
    event = {"event": "request", "path": "/v1/charts", "status": 200, "ratio": 0.5, "tags": ["a", "ü"],
             "described": Described(), "opaque": Opaque(), "nothing": None, "service": "frame-test",
             "level": "info", "timestamp": "2026-11-28T08:00:00.000001Z"}
    ours = json_renderer()(None, "info", dict(event))
    assert ours == structlog.processors.JSONRenderer()(None, "info", dict(event))
    assert json.loads(ours)["described"] == "described" and json.loads(ours)["opaque"] == "<opaque>"
    assert "\\u00fc" in ours, "non-ASCII escaped, as json.dumps does by default"
