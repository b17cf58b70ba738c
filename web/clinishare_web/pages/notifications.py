"""Notifications (the inbox behind the unread badge) and the e-mail preference."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from clinishare_web.links import console_path
from clinishare_web.pages.common import Member, page_link

router = APIRouter()


@router.get("/notifications")
async def inbox(ctx: Member) -> Response:
    unread_only = ctx.query.get("unread") == "true"
    page = await ctx.api.get("/v1/notifications", unread="true" if unread_only else None,
                             cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    items = [{**n, "href": console_path(n["link"])} for n in page["items"]]
    return await ctx.render("notifications.html", title="Notifications", items=items, unread_only=unread_only,
                            next_page=page_link(ctx.request, page["next_cursor"]))


@router.post("/notifications/{notification_id}/read")
async def mark_read(notification_id: str, ctx: Member) -> Response:
    n = await ctx.api.post(f"/v1/notifications/{notification_id}/read")
    if ctx.field("open") == "1":
        return ctx.redirect(console_path(n["link"]))
    return ctx.redirect("/notifications", "Marked as read.")


@router.post("/notification-preferences")
async def preferences(ctx: Member) -> Response:
    await ctx.api.put("/v1/notification-preferences", {"email": ctx.field("email") == "on"})
    return ctx.redirect("/me" if ctx.session.kind != "patient" else "/portal/account", "Preferences saved.")
