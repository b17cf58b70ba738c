"""The FastAPI application every service is built on: request context, problem+json, health."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.idempotency import IdempotencyMiddleware
from clinishare_shared.openapi import distribution_version, install_contract, operation_id
from clinishare_shared.observability import OUTBOX_OLDEST, OUTBOX_PENDING, metrics_body
from clinishare_shared.protection import protect
from clinishare_shared.problems import install_problem_handlers, problem_response


def service_app(*, title: str, description: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
                version: str | None = None, service: str | None = None) -> FastAPI:
    """``service`` labels the metrics; by default the title's last word ("Clinishare charts" -> charts)."""
    service = service or title.split()[-1].lower()
    # the service's own version: "Clinishare charts" is the distribution clinishare-charts
    version = version or distribution_version("-".join(title.lower().split()))
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  generate_unique_id_function=operation_id)
    install_contract(app)
    app.add_middleware(IdempotencyMiddleware)  # inside the body limit: it reads bodies that fit
    protect(app)  # inside the request context, so a 413 is logged with its request id
    app.add_middleware(RequestContextMiddleware, service=service)
    install_problem_handlers(app)
    install_metrics(app, relays=lambda: {service: getattr(getattr(app.state, "infra", None), "relay", None)})

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database and the broker answer")
    async def readyz(request: Request) -> Any:
        checks = await request.app.state.infra.ready()
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        return problem_response(503, detail="a dependency is not ready", checks=checks)

    return app


def install_metrics(app: FastAPI, *, relays: Callable[[], dict[str, Any]]) -> None:
    """``GET /metrics`` in Prometheus' text format; the outbox gauges of ``relays()`` are read at scrape time."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        for service, relay in relays().items():
            if relay is not None:
                pending, oldest_age = await relay.backlog()
                OUTBOX_PENDING.labels(service).set(pending)
                OUTBOX_OLDEST.labels(service).set(oldest_age)
        body, content_type = metrics_body()
        return Response(body, media_type=content_type)
