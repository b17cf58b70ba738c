from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from clinishare_shared.app import service_app
from clinishare_shared.context import current_correlation_id, current_request_id
from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.pagination import Page, PageParams, PageQuery
from clinishare_shared.problems import PROBLEM_JSON, Problem, install_problem_handlers, not_found
from clinishare_shared.routes import DEFAULT_PORTS, ROUTES, SERVICES, owner_of


class Body(BaseModel):
    name: str
    age: int


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)

    @app.get("/problem")
    async def problem() -> None:
        raise Problem(422, "some ids are not on your sharing list", invalid_ids=["x", "y"])

    @app.get("/missing")
    async def missing() -> None:
        raise not_found("chart")

    @app.get("/http")
    async def http() -> None:
        raise HTTPException(409, "already there")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: Jane Doe")

    @app.post("/body")
    async def body(b: Body) -> dict[str, Any]:
        return b.model_dump()

    @app.get("/ctx")
    async def ctx() -> dict[str, Any]:
        return {"request_id": current_request_id(), "correlation_id": current_correlation_id()}

    @app.get("/page")
    async def page(params: PageParams) -> Page[str]:
        docs = [{"_id": f"{i:024x}"} for i in range(30, 0, -1)]
        docs = [d for d in docs if not params.cursor or d["_id"] < params.cursor][: params.limit + 1]
        items, cursor = params.page(docs)
        return Page[str](items=[d["_id"] for d in items], next_cursor=cursor)

    return app


def _is_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["status"] == status and body["type"] and body["title"]
    return body


def test_problem_handlers() -> None:
    c = TestClient(_app(), raise_server_exceptions=False)
    body = _is_problem(c.get("/problem"), 422)
    assert body["invalid_ids"] == ["x", "y"] and body["detail"] and body["instance"] == "/problem"
    assert _is_problem(c.get("/missing"), 404)["detail"] == "chart not found"
    assert _is_problem(c.get("/http"), 409)["detail"] == "already there"
    assert _is_problem(c.get("/nowhere"), 404)["title"] == "Not found"
    _is_problem(c.post("/problem"), 405)
    body = _is_problem(c.get("/boom"), 500)
    assert "Jane" not in str(body) and "secret" not in str(body)


def test_validation_errors_do_not_echo_input() -> None:
    c = TestClient(_app())
    r = c.post("/body", json={"name": {"nested": "Jane Doe DOB 1970-01-01"}, "age": "forty-two Jane"})
    body = _is_problem(r, 422)
    assert "Jane" not in r.text and "1970" not in r.text and "forty" not in r.text
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "name"), ("body", "age")}
    for e in body["errors"]:
        assert set(e) == {"loc", "msg", "type"}
    r = c.post("/body", content=b'{"name": "Jane Doe", "age": ', headers={"content-type": "application/json"})
    _is_problem(r, 422)
    assert "Jane" not in r.text


def test_request_and_correlation_ids_echoed_and_bound() -> None:
    c = TestClient(_app())
    r = c.get("/ctx", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-9"})
    assert r.headers["x-request-id"] == "req-1" and r.headers["x-correlation-id"] == "corr-9"
    assert r.json() == {"request_id": "req-1", "correlation_id": "corr-9"}
    r = c.get("/ctx")
    rid = r.headers["x-request-id"]
    assert len(rid) == 32 and r.headers["x-correlation-id"] == rid
    assert r.json() == {"request_id": rid, "correlation_id": rid}
    # unsafe values are not echoed (header / log injection)
    r = c.get("/ctx", headers={"X-Request-ID": "a b<script>", "X-Correlation-ID": "x" * 200})
    assert r.headers["x-request-id"] != "a b<script>" and len(r.headers["x-correlation-id"]) < 200
    # problem responses carry them too
    r = c.get("/missing", headers={"X-Request-ID": "req-2"})
    assert r.headers["x-request-id"] == "req-2"
    # and nothing leaks into the next request's context
    assert structlog.contextvars.get_contextvars().get("request_id") is None


def test_pagination_dependency() -> None:
    c = TestClient(_app())
    r = c.get("/page", params={"limit": 10}).json()
    assert len(r["items"]) == 10 and r["next_cursor"] == r["items"][-1]
    seen = list(r["items"])
    while r["next_cursor"]:
        r = c.get("/page", params={"limit": 10, "cursor": r["next_cursor"]}).json()
        seen += r["items"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 30
    assert c.get("/page").json()["next_cursor"] is None  # default 50 > 30
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "zzz"}, {"cursor": "a" * 25}):
        _is_problem(c.get("/page", params=bad), 422)


def test_page_query() -> None:
    q = PageQuery(limit=2, cursor=None)
    assert q.id_filter() == {}
    assert q.page([{"_id": "c"}, {"_id": "b"}, {"_id": "a"}]) == ([{"_id": "c"}, {"_id": "b"}], "b")
    assert q.page([{"_id": "c"}, {"_id": "b"}]) == ([{"_id": "c"}, {"_id": "b"}], None)
    assert q.page([]) == ([], None)
    assert PageQuery(limit=2, cursor="b").id_filter() == {"_id": {"$lt": "b"}}


def test_service_app_health() -> None:
    class FakeInfra:
        ok = True

        async def ready(self) -> dict[str, bool]:
            return {"database": True, "broker": self.ok}

    infra = FakeInfra()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.infra = infra
        yield

    app = service_app(title="t", description="d", lifespan=lifespan)
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["status"] == "ready"
        infra.ok = False
        body = _is_problem(c.get("/readyz"), 503)
        assert body["checks"] == {"database": True, "broker": False}
        assert c.get("/healthz", headers={"X-Request-ID": "r"}).headers["x-request-id"] == "r"


@pytest.mark.parametrize("path,owner", [
    ("/v1/charts", "charts"), ("/v1/charts/abc/notes", "charts"), ("/v1/portal/documents/x", "documents"),
    ("/v1/portal/forms", "forms"), ("/v1/portal/activate", "identity"), ("/v1/portal", None),
    ("/v1/chartsX", None), ("/.well-known/jwks.json", "identity"), ("/v1/sharing-list", "identity"),
    ("/v1/notification-preferences/x", "notify"), ("/", None),
])
def test_routes(path: str, owner: str | None) -> None:
    assert owner_of(path) == owner


def test_route_table_consistent() -> None:
    assert {s for _, s in ROUTES} == set(SERVICES)
    assert set(DEFAULT_PORTS) == set(SERVICES) | {"gateway"}
    assert len({p for p, _ in ROUTES}) == len(ROUTES)


async def test_service_to_service_calls_carry_the_request_and_correlation_ids() -> None:
    import httpx

    from clinishare_shared.directory import IdentityDirectory

    seen: dict[str, Any] = {}
    identity = FastAPI()

    @identity.get("/v1/patients/{pid}")
    async def patient(pid: str, request: Any = None) -> dict[str, str]:
        return {"id": pid}

    @identity.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        seen.update(request_id=request.headers.get("x-request-id"),
                    correlation_id=request.headers.get("x-correlation-id"))
        return await call_next(request)

    directory = IdentityDirectory("http://identity.test", transport=httpx.ASGITransport(app=identity))
    with structlog.contextvars.bound_contextvars(request_id="req-42", correlation_id="corr-7"):
        assert await directory.patient("p1", authorization="Bearer t") == {"id": "p1"}
    assert seen == {"request_id": "req-42", "correlation_id": "corr-7"}
