"""The gateway forwards each path to the service that owns it, streams bodies both ways, and answers
problem+json itself for unknown paths and unreachable services."""

from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request

from clinishare_gateway.app import GatewaySettings, create_app
from clinishare_shared.testing import LiveServer
from clinishare_shared.processes import free_port


def upstream(name: str) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def echo(request: Request, path: str) -> dict:
        body = await request.body()
        return {"service": name, "path": "/" + path, "query": str(request.url.query),
                "auth": request.headers.get("authorization"), "body_len": len(body),
                "request_id": request.headers.get("x-request-id"),
                "forwarded_host": request.headers.get("x-forwarded-host")}

    return app



async def test_routes_each_path_to_its_owner_and_streams_bodies() -> None:
    async with LiveServer(upstream("charts")) as charts, LiveServer(upstream("forms")) as forms, \
            LiveServer(upstream("identity")) as identity:
        settings = GatewaySettings(charts_url=charts.url, forms_url=forms.url, identity_url=identity.url,
                                   documents_url=f"http://127.0.0.1:{free_port()}")
        async with LiveServer(create_app(settings)) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            r = await client.get("/v1/charts/shared-with-me?q=x", headers={"Authorization": "Bearer t"})
            assert r.json()["service"] == "charts"
            assert r.json()["path"] == "/v1/charts/shared-with-me" and r.json()["query"] == "q=x"
            assert r.json()["auth"] == "Bearer t" and r.json()["request_id"]
            assert (await client.get("/v1/chart-shares")).json()["service"] == "charts"
            assert (await client.get("/v1/portal/forms")).json()["service"] == "forms"
            assert (await client.get("/v1/portal/activate")).json()["service"] == "identity"
            big = b"x" * (3 * 1024 * 1024)
            r = await client.post("/v1/forms/f/assignments", content=big)
            assert r.json() == {**r.json(), "service": "forms", "body_len": len(big)}

            missing = await client.get("/v1/nothing-here")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            # the gateway's own answers carry the security headers too, and nobody names the server
            assert missing.headers["cache-control"] == "no-store" and missing.headers["x-content-type-options"] == "nosniff"
            assert "server" not in missing.headers

            down = await client.get("/v1/documents")
            assert down.status_code == 502
            assert down.headers["content-type"] == "application/problem+json"


async def test_replicas_take_turns_and_a_refusing_one_is_skipped() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with LiveServer(upstream("charts-a")) as a, LiveServer(upstream("charts-b")) as b:
        settings = GatewaySettings(charts_url=f"{a.url},{b.url}, {dead}")
        async with LiveServer(create_app(settings)) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            served = [(await client.post("/v1/charts", content=b"{}")).json()["service"] for _ in range(6)]
            # round-robin over a, b and the dead one, whose turn goes to the next replica: nothing fails
            assert served.count("charts-a") >= 2 and served.count("charts-b") >= 2
            assert set(served) == {"charts-a", "charts-b"}
        only_dead = GatewaySettings(charts_url=f"{dead},{dead}")
        async with LiveServer(create_app(only_dead)) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            r = await client.get("/v1/charts")
            assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"


async def test_forwards_everything_outside_v1_to_the_console_and_sends_browsers_from_api_links_there() -> None:
    async with LiveServer(upstream("web")) as web, LiveServer(upstream("charts")) as charts:
        settings = GatewaySettings(charts_url=charts.url, web_url=web.url)
        async with LiveServer(create_app(settings)) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            page = await client.get("/charts/abc?x=1")
            assert page.json()["service"] == "web" and page.json()["path"] == "/charts/abc"
            assert page.json()["forwarded_host"] == gw.url.removeprefix("http://")
            assert (await client.post("/login", content=b"a=b")).json()["service"] == "web"
            assert (await client.get("/v1/nothing-here")).status_code == 404  # the API's 404, not a page
            # an e-mail link (an API path) opened in a browser: the console page of the same item
            nav = await client.get("/v1/charts/abc?x=1", headers={"accept": "text/html,*/*"})
            assert nav.status_code == 303 and nav.headers["location"] == "/charts/abc?x=1"
            api = await client.get("/v1/charts/abc", headers={"accept": "text/html", "authorization": "Bearer t"})
            assert api.json()["service"] == "charts"
        # without a console configured, nothing changes for the API
        async with LiveServer(create_app(GatewaySettings(charts_url=charts.url))) as gw, \
                httpx.AsyncClient(base_url=gw.url) as client:
            assert (await client.get("/charts/abc")).status_code == 404
            assert (await client.get("/v1/charts/abc", headers={"accept": "text/html"})).json()["service"] == "charts"


async def test_one_request_id_forwarded_and_returned_once_and_lengths_kept() -> None:
    seen: dict[str, object] = {}
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def echo(request: Request, path: str) -> object:
        from fastapi.responses import Response

        seen.update(request_id=request.headers.get("x-request-id"), length=request.headers.get("content-length"),
                    chunked=request.headers.get("transfer-encoding"), traceparent=request.headers.get("traceparent"))
        # a service answers with its own copy of the id: the gateway must not return two
        return Response(b"0123456789", media_type="text/plain", headers={"x-request-id": "upstream-copy"})

    async with LiveServer(app) as charts:
        settings = GatewaySettings(charts_url=charts.url)
        async with LiveServer(create_app(settings)) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            r = await client.post("/v1/charts", content=b"x" * 1000)
            [returned] = r.headers.get_list("x-request-id")
            assert returned == seen["request_id"], "the id forwarded is the id returned"
            assert r.headers["content-length"] == "10" and r.content == b"0123456789"
            assert seen["length"] == "1000" and seen["chunked"] is None
            # a caller's own (safe) id is kept end to end; an unsafe one is replaced
            r = await client.get("/v1/charts", headers={"x-request-id": "caller-id-1"})
            assert r.headers.get_list("x-request-id") == ["caller-id-1"] == [seen["request_id"]]
            r = await client.get("/v1/charts", headers={"x-request-id": "bad id\twith tab"})
            assert r.headers.get_list("x-request-id") == [seen["request_id"]] != ["bad id\twith tab"]
            assert (await client.get("/metrics")).status_code == 200


def service_with_contract(name: str, path: str) -> FastAPI:
    from clinishare_shared.app import service_app

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield

    app = service_app(title=f"Clinishare {name}", description=name, lifespan=lifespan)

    @app.get(path, operation_id=f"{name}.list")
    async def listing() -> dict[str, str]:
        return {"service": name}

    return app


async def test_combined_openapi_swagger_ui_from_packaged_assets_and_asyncapi() -> None:
    from contextlib import AsyncExitStack

    from clinishare_shared.routes import SERVICES

    paths = {"identity": "/v1/me", "charts": "/v1/charts", "documents": "/v1/documents", "forms": "/v1/forms",
             "notify": "/v1/notifications", "audit": "/v1/portal/disclosures"}
    async with AsyncExitStack() as stack:
        urls = {s: (await stack.enter_async_context(LiveServer(service_with_contract(s, paths[s])))).url
                for s in SERVICES}
        gw = await stack.enter_async_context(
            LiveServer(create_app(GatewaySettings(**{f"{s}_url": u for s, u in urls.items()}))))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=gw.url))
        document = (await client.get("/openapi.json")).json()
        assert set(paths.values()) <= set(document["paths"])
        assert document["paths"]["/v1/charts"]["get"]["operationId"] == "charts.list"
        page = await client.get("/docs")
        assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text, "no CDN: every asset is ours"
        assert "<script>" not in page.text, "no inline script"
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "init.js"):
            r = await client.get(f"/docs/{asset}")
            assert r.status_code == 200 and len(r.content) > 20, asset
        assert '"/openapi.json"' in (await client.get("/docs/init.js")).text
        # Swagger UI 5 (4 cannot render the OpenAPI 3.1 documents the services produce)
        assert document["openapi"].startswith("3.1") and b'"5.' in (await client.get("/docs/swagger-ui-bundle.js")).content
        assert (await client.get("/docs/../../etc/passwd")).status_code == 404
        asyncapi = (await client.get("/asyncapi.json")).json()
        assert asyncapi["asyncapi"].startswith("3.") and "charts.share.granted" in str(asyncapi["channels"])
