"""Smart Charts: Your Charts and Charts Shared With You (each searchable), a chart with its notes, the
Chart Sharing Options dialog, and the list of your grants with revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Practitioner, names, page_link
from clinishare_web.pages.identity import patient_options

router = APIRouter()
RULES = [("chart", "This Specific Chart"), ("patient", "All Of This Patient's Charts"), ("all", "All Of My Charts")]


async def _list(ctx: Practitioner, tab: str, status_code: int = 200, **extra: Any) -> Response:
    q = ctx.query.get("q", "")
    path = "/v1/charts" if tab == "mine" else "/v1/charts/shared-with-me"
    page = await ctx.api.get(path, q=q, cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    patients = await patient_options(ctx) if tab == "mine" else []
    known = await names(ctx.api) if tab == "shared" else {}
    return await ctx.render("charts.html", status_code=status_code, names=known,
                            title="Your Charts" if tab == "mine" else "Charts Shared With You", tab=tab, q=q,
                            charts=page["items"], patients=patients,
                            next_page=page_link(ctx.request, page["next_cursor"]), **extra)


@router.get("/charts")
async def your_charts(ctx: Practitioner) -> Response:
    return await _list(ctx, "mine")


@router.get("/charts/shared-with-me")
async def shared_with_me(ctx: Practitioner) -> Response:
    return await _list(ctx, "shared")


@router.post("/charts")
async def create_chart(ctx: Practitioner) -> Response:
    values = {"patient_id": ctx.field("patient_id"), "title": ctx.field("title"), "body": ctx.field("body")}
    try:
        chart = await ctx.api.post("/v1/charts", values, known_fields=("patient_id", "title", "body"))
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _list(ctx, "mine", status_code=422, values=values, errors=exc.fields or {"_form": exc.detail})
    return ctx.redirect(f"/charts/{chart['id']}", "Chart saved.")


async def _chart_page(ctx: Practitioner, chart_id: str, status_code: int = 200, **extra: Any) -> Response:
    chart = await ctx.api.get(f"/v1/charts/{chart_id}")
    known = await names(ctx.api)
    known[ctx.session.account_id or ""] = f"{ctx.session.name} (you)"
    return await ctx.render("chart.html", status_code=status_code, title=chart["title"], chart=chart, names=known,
                            is_author=chart["author_id"] == ctx.session.account_id, **extra)


@router.get("/charts/{chart_id}")
async def chart(chart_id: str, ctx: Practitioner) -> Response:
    return await _chart_page(ctx, chart_id)


@router.post("/charts/{chart_id}/notes")
async def add_note(chart_id: str, ctx: Practitioner) -> Response:
    text = ctx.field("text")
    try:
        await ctx.api.post(f"/v1/charts/{chart_id}/notes", {"text": text}, known_fields=("text",))
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _chart_page(ctx, chart_id, status_code=422, values={"text": text},
                                 errors={"text": exc.fields.get("text", exc.detail)})
    return ctx.redirect(f"/charts/{chart_id}#notes", "Note added.")


@router.post("/charts/{chart_id}/edit")
async def edit_chart(chart_id: str, ctx: Practitioner) -> Response:
    values = {"title": ctx.field("title"), "body": ctx.field("body")}
    try:
        await ctx.api.patch(f"/v1/charts/{chart_id}", values, known_fields=("title", "body"))
    except ApiError as exc:
        if exc.status not in (412, 422):
            raise
        return await _chart_page(ctx, chart_id, status_code=exc.status, edit_values=values,
                                 errors=exc.fields or {"_edit": exc.detail})
    return ctx.redirect(f"/charts/{chart_id}", "Chart updated.")


# ---- Chart Sharing Options ---------------------------------------------------------------------------

async def _sharing_dialog(ctx: Practitioner, chart_id: str, status_code: int = 200, **extra: Any) -> Response:
    chart = await ctx.api.get(f"/v1/charts/{chart_id}")
    if chart["author_id"] != ctx.session.account_id:
        raise ApiError(404, "not found")
    sl = await ctx.api.get("/v1/sharing-list")
    return await ctx.render("chart_share.html", status_code=status_code, title="Chart Sharing Options", chart=chart,
                            rules=RULES, sharing=sl, **extra)


@router.get("/charts/{chart_id}/share")
async def sharing_options(chart_id: str, ctx: Practitioner) -> Response:
    return await _sharing_dialog(ctx, chart_id, values={"rule": "chart"})


@router.post("/charts/{chart_id}/share")
async def share_chart(chart_id: str, ctx: Practitioner) -> Response:
    rule, consent = ctx.field("rule"), ctx.field("patient_consent")
    values: dict[str, Any] = {"rule": rule, "practitioner_ids": ctx.fields("practitioner_ids"),
                              "office_ids": ctx.fields("office_ids"), "patient_consent": consent}
    chart = await ctx.api.get(f"/v1/charts/{chart_id}")
    body: dict[str, Any] = {"rule": rule, "practitioner_ids": values["practitioner_ids"],
                            "office_ids": values["office_ids"], "patient_consent": consent == "yes"}
    if rule == "chart":
        body["chart_id"] = chart_id
    elif rule == "patient":
        body["patient_id"] = chart["patient_id"]
    if ctx.field("expires_at"):
        body["expires_at"] = ctx.field("expires_at") + ":00Z" if len(ctx.field("expires_at")) == 16 else ctx.field("expires_at")
        values["expires_at"] = ctx.field("expires_at")
    try:
        # the API decides (consent No is refused there with 422); the dialog shows its answer
        await ctx.api.post("/v1/chart-shares", body,
                           known_fields=("patient_consent", "practitioner_ids", "office_ids", "rule", "expires_at"))
    except ApiError as exc:
        if exc.status != 422:
            raise
        errors = dict(exc.fields)
        if exc.problem.get("invalid_ids") or "recipient" in exc.detail or "recipient" in errors.get("_form", ""):
            errors["recipients"] = errors.pop("_form", exc.detail)
        if "practitioner_ids" in errors or "office_ids" in errors:
            errors["recipients"] = errors.pop("practitioner_ids", None) or errors.pop("office_ids")
        if not errors:
            errors["_form"] = exc.detail
        return await _sharing_dialog(ctx, chart_id, status_code=422, values=values, errors=errors)
    return ctx.redirect("/chart-shares", "Shared. The recipients can see it under Charts Shared With You.")


@router.get("/chart-shares")
async def grants(ctx: Practitioner) -> Response:
    page = await ctx.api.get("/v1/chart-shares", cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    known = await names(ctx.api)
    return await ctx.render("chart_shares.html", title="Your chart shares", grants=page["items"], names=known,
                            rules=dict(RULES), next_page=page_link(ctx.request, page["next_cursor"]))


@router.get("/chart-shares/{grant_id}/revoke")
async def confirm_revoke(grant_id: str, ctx: Practitioner) -> Response:
    return await ctx.render("confirm.html", title="Stop sharing?", action=f"/chart-shares/{grant_id}/revoke",
                            message="Stop this share? Its recipients lose access to the charts at once.",
                            button="Stop sharing", back="/chart-shares")


@router.post("/chart-shares/{grant_id}/revoke")
async def revoke(grant_id: str, ctx: Practitioner) -> Response:
    await ctx.api.delete(f"/v1/chart-shares/{grant_id}")
    return ctx.redirect("/chart-shares", "The share was stopped.")
