"""Sign up, log in, log out, and the home page that sends each kind of account to its start page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Anyone

router = APIRouter()
START = {"practitioner": "/charts", "staff": "/offices", "patient": "/portal"}


def _safe_next(target: str | None) -> str | None:
    # only a path on this site: never an open redirect to another origin
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


@router.get("/")
async def home(ctx: Anyone) -> Response:
    if ctx.session.authenticated:
        return ctx.redirect(START.get(ctx.session.kind or "", "/charts"))
    return await ctx.render("welcome.html", title="Welcome")


@router.get("/login")
async def login_form(ctx: Anyone) -> Response:
    return await ctx.render("login.html", title="Log in", next=_safe_next(ctx.query.get("next")) or "")


@router.post("/login")
async def login(ctx: Anyone) -> Response:
    email, password, target = ctx.field("email"), ctx.field("password"), _safe_next(ctx.field("next"))
    try:
        token = await ctx.api.post("/v1/auth/token", {"email": email, "password": password},
                                   known_fields=("email", "password"))
        ctx.api.headers["authorization"] = f"Bearer {token['access_token']}"
        account = await ctx.api.get("/v1/me")
    except ApiError as exc:
        message = "Wrong e-mail or password." if exc.status in (401, 422) else exc.detail
        return await ctx.render("login.html", status_code=exc.status if exc.status != 401 else 400,
                                title="Log in", next=target or "", values={"email": email},
                                errors={"_form": message})
    ctx.session.login(token=token["access_token"], expires_in=int(token["expires_in"]), account=account)
    return ctx.redirect(target or START.get(account["kind"], "/"), f"Welcome, {account['name']}.")


@router.get("/signup")
async def signup_form(ctx: Anyone) -> Response:
    return await ctx.render("signup.html", title="Create an account")


@router.post("/signup")
async def signup(ctx: Anyone) -> Response:
    values = {k: ctx.field(k) for k in ("name", "email", "kind")}
    try:
        await ctx.api.post("/v1/accounts", {**values, "password": ctx.field("password")},
                           known_fields=("name", "email", "password", "kind"))
    except ApiError as exc:
        errors = exc.fields or {"_form": exc.detail}
        if exc.status == 409:
            errors = {"email": exc.detail}
        return await ctx.render("signup.html", status_code=exc.status, title="Create an account", values=values,
                                errors=errors)
    return ctx.redirect("/login", "Your account is ready: log in with your e-mail and password.")


@router.post("/logout")
async def logout(ctx: Anyone) -> Response:
    ctx.session.logout()
    return ctx.redirect("/login", "You are logged out.")
