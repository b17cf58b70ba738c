"""The patient portal: activate with an invite, my documents, forms to fill, who saw my data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Anyone, Patient, page_link

router = APIRouter()


@router.get("/portal")
async def portal(ctx: Patient) -> Response:
    docs = await ctx.api.get("/v1/portal/documents", limit=5)
    forms = await ctx.api.get("/v1/portal/forms", limit=5)
    return await ctx.render("portal.html", title="Your portal", documents=docs["items"], forms=forms["items"])


@router.get("/portal/activate")
async def activate_form(ctx: Anyone) -> Response:
    return await ctx.render("activate.html", title="Activate your portal",
                            values={"invite_token": ctx.query.get("invite", "")})


@router.post("/portal/activate")
async def activate(ctx: Anyone) -> Response:
    token, password, confirm = ctx.field("invite_token"), ctx.form.get("password") if ctx.form else "", ctx.field("confirm")
    password = password if isinstance(password, str) else ""
    values = {"invite_token": token}
    if password != (ctx.form.get("confirm") if ctx.form else None):
        return await ctx.render("activate.html", status_code=422, title="Activate your portal", values=values,
                                errors={"confirm": "The two passwords differ."})
    try:
        account = await ctx.api.post("/v1/portal/activate", {"invite_token": token, "password": password},
                                     known_fields=("invite_token", "password"))
        login = await ctx.api.post("/v1/auth/token", {"email": account["email"], "password": password})
    except ApiError as exc:
        if exc.status not in (409, 422, 429):
            raise
        errors = dict(exc.fields)
        if not errors:
            errors["password" if "password" in exc.detail.lower() else "invite_token"] = exc.detail
        return await ctx.render("activate.html", status_code=exc.status, title="Activate your portal", values=values,
                                errors=errors)
    ctx.session.login(token=login["access_token"], expires_in=int(login["expires_in"]), account=account)
    return ctx.redirect("/portal", "Your portal is active. Welcome!")


@router.get("/portal/documents")
async def documents(ctx: Patient) -> Response:
    page = await ctx.api.get("/v1/portal/documents", cursor=ctx.query.get("cursor"),
                             limit=ctx.request.app.state.settings.page_size)
    return await ctx.render("portal_documents.html", title="Your documents", documents=page["items"],
                            next_page=page_link(ctx.request, page["next_cursor"]))


@router.get("/portal/forms")
async def forms(ctx: Patient) -> Response:
    page = await ctx.api.get("/v1/portal/forms", cursor=ctx.query.get("cursor"),
                             limit=ctx.request.app.state.settings.page_size)
    return await ctx.render("portal_forms.html", title="Forms to fill in", forms=page["items"],
                            next_page=page_link(ctx.request, page["next_cursor"]))


async def _assignment(ctx: Patient, assignment_id: str) -> dict[str, Any]:
    cursor = None
    while True:
        page = await ctx.api.get("/v1/portal/forms", limit=100, cursor=cursor)
        found = next((a for a in page["items"] if a["id"] == assignment_id), None)
        if found or not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    if found is None:
        raise ApiError(404, "not found")
    return found


@router.get("/portal/forms/{assignment_id}")
async def fill(assignment_id: str, ctx: Patient) -> Response:
    a = await _assignment(ctx, assignment_id)
    return await ctx.render("portal_fill.html", title=a["title"], assignment=a)


def _answers(ctx: Patient, fields: list[dict[str, Any]]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for f in fields:
        key, kind = f["key"], f["type"]
        if kind == "multi_choice":
            answers[key] = ctx.fields(key)
        elif kind == "checkbox":
            answers[key] = ctx.field(key) == "on"
        elif kind in ("number", "scale"):
            raw = ctx.field(key)
            try:
                answers[key] = (int(raw) if kind == "scale" or raw.lstrip("-").isdigit() else float(raw)) if raw else None
            except ValueError:
                answers[key] = raw  # the API answers "not a number" next to the field
        else:
            answers[key] = ctx.field(key) or None
    return {k: v for k, v in answers.items() if v is not None}


@router.post("/portal/forms/{assignment_id}")
async def submit(assignment_id: str, ctx: Patient) -> Response:
    a = await _assignment(ctx, assignment_id)
    answers = _answers(ctx, a["fields"])
    try:
        await ctx.api.post(f"/v1/assignments/{assignment_id}/submission", {"answers": answers})
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await ctx.render("portal_fill.html", status_code=exc.status, title=a["title"], assignment=a,
                                values={k: ctx.fields(k) if isinstance(v, list) else ctx.field(k) for k, v in answers.items()},
                                errors={**exc.fields, "_form": exc.detail})
    return ctx.redirect("/portal", "Thank you: your answers were sent.")


@router.get("/portal/account")
async def account(ctx: Patient) -> Response:
    prefs = await ctx.api.get("/v1/notification-preferences")
    return await ctx.render("portal_account.html", title="Your account", prefs=prefs)
