"""Operations' view of a share: the Prometheus series move, one trace runs from the gateway through charts
and RabbitMQ to notify, and the gateway's request id is the one logged, forwarded, returned and carried by
the event as its correlation_id."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from clinishare_allinone.system import ServiceOverrides, create_system
from clinishare_audit.settings import AuditSettings
from clinishare_charts.settings import ChartsSettings
from clinishare_documents.settings import DocumentsSettings
from clinishare_forms.settings import FormsSettings
from clinishare_gateway.app import create_app as create_gateway
from clinishare_gateway.settings import GatewaySettings
from clinishare_identity.settings import IdentitySettings
from clinishare_notify.settings import NotifySettings
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.events import Envelope
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import LiveServer, wait_for
from clinishare_shared.processes import free_port

PASSWORD = "correct horse 42"



@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def mailbox() -> Any:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """One SDK tracer provider for the process (OpenTelemetry allows one), recording into memory."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def overrides(unique: str, mailbox: Any, exchange: str | None = None) -> ServiceOverrides:
    def common(name: str) -> dict[str, Any]:
        extra = {"event_exchange": exchange} if exchange else {}
        return {"mongodb_database": f"obs_{unique}_{name}", "queue_name": f"{name}.{unique}",
                "outbox_poll_interval": 0.05, **extra}

    return ServiceOverrides(
        identity=IdentitySettings(**common("identity"), argon2_time_cost=1, argon2_memory_cost=8,
                                  argon2_parallelism=1),
        charts=ChartsSettings(**common("charts")), documents=DocumentsSettings(**common("documents")),
        forms=FormsSettings(**common("forms")),
        notify=NotifySettings(**common("notify"), smtp_host="127.0.0.1", smtp_port=mailbox.port),
        audit=AuditSettings(**common("audit")),
    )


async def share_story(http: httpx.AsyncClient, *, share_request_id: str) -> dict[str, Any]:
    """Alice and Bob sign up and connect; Alice shares a chart with Bob (that request carries the given id)."""
    tokens: dict[str, str] = {}
    for who in ("alice", "bob"):
        r = await http.post("/v1/accounts", json={"email": f"{who}@obs.example", "password": PASSWORD,
                                                  "name": f"Dr {who}", "kind": "practitioner"})
        assert r.status_code == 201, r.text
        r = await http.post("/v1/auth/token", json={"email": f"{who}@obs.example", "password": PASSWORD})
        tokens[who] = r.json()["access_token"]
    auth = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}
    bob_id = (await http.get("/v1/me", headers=auth["bob"])).json()["id"]
    pin = (await http.get("/v1/me/share-pin", headers=auth["bob"])).json()["pin"]
    assert (await http.post("/v1/connections", json={"pin": pin}, headers=auth["alice"])).status_code == 201
    patient = (await http.post("/v1/patients", json={"name": "Jane Roe", "email": "jane@patient.example"},
                               headers=auth["alice"])).json()["id"]
    r = await http.post("/v1/charts", json={"patient_id": patient, "title": "Rash", "body": "Itchy."},
                        headers=auth["alice"])
    assert r.status_code == 201, r.text
    chart = r.json()["id"]

    async def bob_visible() -> bool:
        # the connection reaches charts' projection by an event: share once it is there
        lst = (await http.get("/v1/sharing-list", headers=auth["alice"])).json()
        return any(p["id"] == bob_id for p in lst.get("practitioners", []))

    await wait_for(bob_visible, message="bob on alice's sharing list")
    body = {"rule": "chart", "chart_id": chart, "practitioner_ids": [bob_id], "office_ids": [],
            "patient_consent": True}
    for _ in range(50):
        r = await http.post("/v1/chart-shares", json=body,
                            headers={**auth["alice"], "x-request-id": share_request_id})
        if r.status_code != 422:  # charts' projection may lag identity by an event
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 201, r.text
    return {"response": r, "bob": bob_id, "chart": chart}


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def test_metrics_move_after_a_share(mongo_client: Any, unique: str, mailbox: Any) -> None:
    system = create_system(overrides(unique, mailbox), mongo_client=mongo_client)
    async with LiveServer(system) as server, httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        before = (await http.get("/metrics")).text
        q = f"notify.{unique}"
        story = await share_story(http, share_request_id=f"metrics-{unique}")

        async def scraped() -> str | None:
            text = (await http.get("/metrics")).text
            moved = sample(text, "clinishare_emails_sent_total") > sample(before, "clinishare_emails_sent_total")
            consumed = sample(text, "clinishare_events_consumed_total", queue=q, type="charts.share.granted")
            return text if moved and consumed >= 1 else None

        after = await wait_for(scraped, timeout=20, message="the share's series moved")
        assert isinstance(after, str)
        r = await http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        route = {"service": "charts", "method": "POST", "route": "/v1/chart-shares", "status": "201"}
        assert sample(after, "clinishare_http_requests_total", **route) == \
            sample(before, "clinishare_http_requests_total", **route) + 1
        # route templates, never raw ids: the chart's id appears in no label
        assert story["chart"] not in after
        assert sample(after, "clinishare_events_published_total", source="charts", type="charts.share.granted") >= \
            sample(before, "clinishare_events_published_total", source="charts", type="charts.share.granted") + 1
        assert sample(after, "clinishare_events_consumed_total", queue=f"notify.{unique}",
                      type="identity.connection.created") >= 1
        for svc in ("identity", "charts", "documents", "forms"):
            assert f'clinishare_outbox_pending_events{{service="{svc}"}}' in after
            assert f'clinishare_outbox_oldest_pending_age_seconds{{service="{svc}"}}' in after
        assert sample(after, "clinishare_outbox_pending_events", service="charts") == 0
        assert "clinishare_events_failed_total" in after or "clinishare_events_failed" in after
        assert "clinishare_events_dead_lettered" in after and "clinishare_emails_failed" in after


async def test_one_trace_from_the_gateway_through_charts_and_rabbitmq_to_notify(
        mongo_client: Any, unique: str, mailbox: Any, amqp_url: str, spans: InMemorySpanExporter) -> None:
    exchange = f"obs.{unique}"
    bus = RabbitBus(amqp_url, exchange=exchange)
    await bus.start()
    seen: list[Envelope] = []

    async def observe(event: Envelope) -> None:
        seen.append(event)

    request_id = f"trace-{unique}"
    try:
        await bus.subscribe(f"observer.{unique}", ["charts.share.granted"], observe)
        system = create_system(overrides(unique, mailbox, exchange), bus=bus, mongo_client=mongo_client)
        async with LiveServer(system) as backend:
            gw_settings = GatewaySettings(**{f"{s}_url": backend.url for s in SERVICES})
            async with LiveServer(create_gateway(gw_settings)) as gateway, \
                    httpx.AsyncClient(base_url=gateway.url, timeout=20) as http:
                spans.clear()
                story = await share_story(http, share_request_id=request_id)
                response = story["response"]
                # returned once, and it is the id the caller chose (a safe one), forwarded as is
                assert response.headers.get_list("x-request-id") == [request_id]
                await wait_for(lambda: any(e.type == "charts.share.granted" for e in seen), timeout=20)
                granted = next(e for e in seen if e.type == "charts.share.granted")
                assert granted.correlation_id == request_id

                def process_span() -> Any:
                    return next((s for s in spans.get_finished_spans()
                                 if s.name == "charts.share.granted process"
                                 and s.attributes.get("messaging.destination.name") == f"notify.{unique}"), None)

                consumer = await wait_for(process_span, timeout=20, message="notify consumed the share")
    finally:
        await bus.close()
        await _cleanup(amqp_url, exchange, unique)

    finished = {s.context.span_id: s for s in spans.get_finished_spans()}
    chain = [consumer]
    while chain[-1].parent is not None and chain[-1].parent.span_id in finished:
        chain.append(finished[chain[-1].parent.span_id])
    # FastAPI adds its own "fastapi.endpoint" spans inside each request's: not ours to assert on
    names = [s.name for s in chain if s.name != "fastapi.endpoint"]
    # notify's consumer <- charts' relay publish <- charts' request <- the gateway's request
    assert names == ["charts.share.granted process", "charts.share.granted publish", "POST /v1/chart-shares",
                     "POST /{path:path}"], names
    assert len({s.context.trace_id for s in chain}) == 1
    assert chain[-1].parent is None, "the gateway's span is the root"
    requests = [s for s in chain if s.kind == trace.SpanKind.SERVER]
    assert [s.attributes["clinishare.request_id"] for s in requests] == [request_id, request_id]


async def _cleanup(amqp_url: str, exchange: str, unique: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for queue in [*(f"{s}.{unique}" for s in SERVICES), f"observer.{unique}"]:
            for name in (queue, f"{queue}.dlq"):
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except Exception:
                    pass
        for ex in (exchange, f"{exchange}.dlx", f"{exchange}.stream"):
            channel = await connection.channel()
            try:
                await channel.exchange_delete(ex)
            except Exception:
                pass
