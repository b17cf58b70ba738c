"""Metrics (Prometheus) and traces (OpenTelemetry), written once for every service.

Metrics: ``GET /metrics`` on every service (``service_app``) and the gateway. The series, all prefixed
``clinishare_``: HTTP requests by route template and status (and their duration), outbox pending events and
the age of the oldest (computed at scrape time), events published by source and type, consumed, failed and
dead-lettered by queue and type, e-mails sent and failed.

Traces: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the OpenTelemetry API alone is a no-op that still
passes an incoming ``traceparent`` on). Propagation is W3C trace context, written once here and used by the
HTTP middleware (extract), outgoing HTTP calls (inject), the outbox (the ``traceparent`` of the request that
staged an event is stored beside it, so the relay's publish continues that trace), the buses (inject into
AMQP headers on publish, extract on consume).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from clinishare_shared.context import current_correlation_id, current_request_id

tracer = trace.get_tracer("clinishare")

HTTP_REQUESTS = Counter("clinishare_http_requests", "HTTP requests by route template and status",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("clinishare_http_request_duration_seconds", "HTTP request duration by route template",
                         ["service", "method", "route"])
OUTBOX_PENDING = Gauge("clinishare_outbox_pending_events", "events staged in the outbox, not yet published",
                       ["service"])
OUTBOX_OLDEST = Gauge("clinishare_outbox_oldest_pending_age_seconds",
                      "age of the oldest event still in the outbox (0 when none)", ["service"])
EVENTS_PUBLISHED = Counter("clinishare_events_published", "events confirmed by the broker", ["source", "type"])
EVENTS_CONSUMED = Counter("clinishare_events_consumed", "events a consumer handled", ["queue", "type"])
EVENTS_FAILED = Counter("clinishare_events_failed", "deliveries whose handler raised (redelivered)",
                        ["queue", "type"])
EVENTS_DEAD_LETTERED = Counter("clinishare_events_dead_lettered", "events moved to a dead-letter queue",
                               ["queue", "type"])
EVENTS_UNCONFIRMED = Counter(
    "clinishare_outbox_events_unconfirmed",
    "events sent to the broker whose confirm never came, by what became of them: routed (the events stream "
    "had it: not sent again), not_routed (sent again), unverifiable (the broker died or shut down, or has no "
    "stream: sent again, so consumers may see it twice)", ["source", "resolution"])
EMAILS_SENT = Counter("clinishare_emails_sent", "e-mails the SMTP server accepted")
EMAILS_FAILED = Counter("clinishare_emails_failed", "e-mail attempts that failed", ["final"])

TRACE_KEY = "_trace"  # beside a staged event in the outbox: the W3C carrier of the request that staged it


def metrics_body() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


# ---- tracing ---------------------------------------------------------------------------------------

def setup_tracing(service: str) -> bool:
    """Export spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; returns whether it did."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"clinishare-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, maybe ``tracestate``); empty if none."""
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


def outgoing_headers() -> dict[str, str]:
    """What a service-to-service HTTP call carries: the request id, the correlation id, the trace."""
    headers = carrier()
    if (rid := current_request_id()) is not None:
        headers["x-request-id"] = rid
    if (cid := current_correlation_id()) is not None:
        headers["x-correlation-id"] = cid
    return headers


async def inject_httpx(request: Any) -> None:
    """An httpx ``request`` event hook: every call carries ``outgoing_headers()`` (what is set stays)."""
    for key, value in outgoing_headers().items():
        if key not in request.headers:
            request.headers[key] = value


def _string_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in (headers or {}).items()}


_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def _traced(incoming: Mapping[str, Any] | None) -> bool:
    """Whether a span is worth starting: spans are recorded here (an SDK tracer provider is installed, by
    ``setup_tracing`` or a test), or there is an incoming trace to pass on. With neither, the API's span
    would be the invalid one, nothing attached and nothing injected: ``trace.INVALID_SPAN`` is the same span
    without the context management (about 8 µs per request and per event)."""
    if incoming and any(str(k).lower() == "traceparent" for k in incoming):
        return True
    return not isinstance(trace.get_tracer_provider(), _NO_SDK)


def _span(name: str, incoming: Mapping[str, Any] | None, kind: SpanKind,
          attributes: dict[str, Any]) -> AbstractContextManager[Any]:
    if not _traced(incoming):
        return nullcontext(trace.INVALID_SPAN)
    context = propagate.extract(_string_headers(incoming)) if incoming else None
    return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


@contextmanager
def server_span(method: str, headers: Mapping[str, Any]) -> Iterator[Any]:
    with _span(method, headers, SpanKind.SERVER, {"http.request.method": method}) as span:
        yield span


@contextmanager
def publishing(event: Any, staged_carrier: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A producer span for ``event``, continuing the trace stored with it in the outbox (if any)."""
    with _span(f"{event.type} publish", staged_carrier, SpanKind.PRODUCER,
               {"messaging.system": "rabbitmq", "messaging.message.id": event.id,
                "messaging.destination.name": event.type}) as span:
        yield span


def published(event: Any) -> None:
    EVENTS_PUBLISHED.labels(event.source, event.type).inc()


def unconfirmed(source: str, resolution: str) -> None:
    EVENTS_UNCONFIRMED.labels(source, resolution).inc()


def dead_lettered(queue: str, event_type: str | None) -> None:
    EVENTS_DEAD_LETTERED.labels(queue, event_type or "unknown").inc()


@contextmanager
def consuming(queue: str, event: Any, headers: Mapping[str, Any] | None) -> Iterator[Any]:
    """A consumer span (child of the publisher's, from the message headers) around one handler run,
    counting it consumed, or failed when the handler raises."""
    with _span(f"{event.type} process", headers, SpanKind.CONSUMER,
               {"messaging.system": "rabbitmq", "messaging.message.id": event.id,
                "messaging.destination.name": queue}) as span:
        try:
            yield span
        except Exception as exc:
            EVENTS_FAILED.labels(queue, event.type).inc()
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        EVENTS_CONSUMED.labels(queue, event.type).inc()
