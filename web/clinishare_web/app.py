"""The web console: server-rendered pages over the public API (a backend-for-frontend).

`create_app(settings, transport=...)`: with a transport (the all-in-one process passes an
`httpx.ASGITransport` over its own dispatcher) the API is called in-process; without one, over HTTP at
`WEB_API_BASE_URL` (the gateway), as when the console runs as its own service.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinishare_shared.app import install_metrics
from clinishare_web.api import ApiError, SessionExpired
from clinishare_web.pages import access, auth, charts, documents, forms, identity, notifications, portal
from clinishare_web.pages.common import CsrfFailed, LoginRequired, templates
from clinishare_web.session import SessionCodec
from clinishare_web.settings import WebSettings

log = structlog.get_logger("clinishare.web")
STATIC = Path(__file__).parent / "static"
PAGE_MODULES = (auth, identity, charts, documents, forms, notifications, portal, access)

# No inline script or style anywhere: everything the pages need is in /static, so 'self' is enough.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # invite tokens travel in the activation link's query
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers to every console response (pages, redirects, static files, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if not scope["path"].startswith("/static/") and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: WebSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or WebSettings()
    codec = SessionCodec(settings.session_key, max_age=settings.session_max_age_seconds,
                         secure=settings.cookie_secure)
    if settings.session_key is None:
        log.info("web_session_key_generated", note="sessions end when this process restarts")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        base = "http://clinishare.internal" if transport is not None else settings.api_base_url.rstrip("/")
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=settings.timeout_seconds) as client:
            app.state.api_client = client
            yield

    app = FastAPI(title="Clinishare console", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.codec = codec
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_metrics(app, relays=dict)  # alone: Prometheus scrapes it like every process (no outbox here)
    for module in PAGE_MODULES:
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        # ready when the API behind it answers (alone: the gateway; in-process: the system itself)
        try:
            r = await request.app.state.api_client.get("/healthz", timeout=3)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    @app.middleware("http")
    async def session_middleware(request: Request, call_next: Any) -> Response:
        request.state.session = codec.load(request)
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response: Response = await call_next(request)
        codec.save(request, response, request.state.session)
        return response

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(SessionExpired)
    async def _expired(request: Request, exc: SessionExpired) -> Response:
        session = request.state.session
        session.logout()
        session.add_flash("Your session has ended. Please log in again.")
        target = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        log.warning("csrf_refused", path=request.url.path)
        return _error_page(request, 403, "This form has expired or did not come from this site. "
                           "Go back, reload the page and try again.")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        status = exc.status if exc.status in (403, 404, 409, 413, 422, 429) else 502
        message = "This page does not exist, or it is not shared with you." if exc.status == 404 else exc.detail
        return _error_page(request, status, message)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        return _error_page(request, 404, "This page does not exist.")

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> Response:
        return _error_page(request, 405, "This address cannot be used that way.")

    return app


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {
        "session": request.state.session, "status": status, "message": message, "unread": None, "flash": [],
        "path": request.url.path, "errors": {}, "values": {},
        "title": {403: "Not allowed", 404: "Not found"}.get(status, "Something went wrong"),
    }, status_code=status)

