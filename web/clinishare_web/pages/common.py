"""What every page uses: the request context (session, CSRF check, the API as the visitor), rendering,
redirects with a flash message, and pagination links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from clinishare_web.api import Api, ApiError
from clinishare_web.session import Session

templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=True))


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt.tzinfo else dt.strftime("%Y-%m-%d %H:%M")


templates.env.filters["when"] = _when


class LoginRequired(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    session: Session
    api: Api
    form: FormData | None = None

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        return [v for v in (self.form.getlist(name) if self.form is not None else []) if isinstance(v, str) and v]

    @property
    def query(self) -> Any:
        return self.request.query_params

    async def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        unread = None
        if self.session.authenticated:
            try:
                page = await self.api.get("/v1/notifications", unread="true", limit=100)
                unread = f"{len(page['items'])}{'+' if page.get('next_cursor') else ''}"
            except ApiError:
                unread = None  # the badge is a convenience; the page still renders without it
        return templates.TemplateResponse(self.request, template, {
            "session": self.session, "unread": unread, "flash": self.session.pop_flash(),
            "path": self.request.url.path, "errors": {}, "values": {}, **context,
        }, status_code=status_code)

    def redirect(self, url: str, message: str | None = None) -> RedirectResponse:
        if message:
            self.session.add_flash(message)
        return RedirectResponse(url, status_code=303)


async def context(request: Request) -> Ctx:
    session: Session = request.state.session
    ctx = Ctx(request=request, session=session,
              api=Api(request.app.state.api_client, session.token if session.authenticated else None,
                      request.state.request_id))
    if request.method == "POST":
        # every post carries the session's CSRF token, in the form (or a header, for our own fetch calls)
        ctx.form = await request.form(max_files=20, max_fields=2000)
        submitted = ctx.form.get("csrf_token") or request.headers.get("x-csrf-token")
        if not session.csrf_ok(submitted if isinstance(submitted, str) else None):
            raise CsrfFailed()
    return ctx


def _require(*kinds: str) -> Any:
    async def dep(ctx: Annotated[Ctx, Depends(context)]) -> Ctx:
        if not ctx.session.authenticated:
            if ctx.session.token:  # it was a session once: say why it ended
                ctx.session.logout()
                ctx.session.add_flash("Your session has ended. Please log in again.")
            raise LoginRequired()
        if kinds and ctx.session.kind not in kinds:
            raise ApiError(404, "not found")
        return ctx
    return dep


Anyone = Annotated[Ctx, Depends(context)]
Member = Annotated[Ctx, Depends(_require())]
Clinician = Annotated[Ctx, Depends(_require("practitioner", "staff"))]
Practitioner = Annotated[Ctx, Depends(_require("practitioner"))]
Patient = Annotated[Ctx, Depends(_require("patient"))]


def page_link(request: Request, cursor: str | None) -> str | None:
    """The next page's URL: the current query with the API's next cursor."""
    if not cursor:
        return None
    params = {k: v for k, v in request.query_params.multi_items() if k != "cursor"}
    params["cursor"] = cursor
    return f"{request.url.path}?{urlencode(params)}"


async def all_items(api: Api, path: str, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
    """One page of up to 100 (for pickers: patients, sharing-list names)."""
    return (await api.get(path, limit=limit, **params))["items"]


async def names(api: Api) -> dict[str, str]:
    """Names the caller may know: practitioners and offices on the sharing list, their patients, themselves."""
    out: dict[str, str] = {}
    try:
        sl = await api.get("/v1/sharing-list")
        out.update({p["id"]: p["name"] for p in sl["practitioners"] + sl["offices"]})
        out.update({p["id"]: p["name"] for p in await all_items(api, "/v1/patients")})
    except ApiError:
        pass
    return out
