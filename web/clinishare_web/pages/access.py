"""Who can see this (a chart, a document, a form) and the accounting of disclosures (SPEC 10.2).

These pages call `GET /v1/{charts|documents|forms}/{id}/access`, `/v1/patients/{id}/disclosures` and
`/v1/portal/disclosures`. A 404 from those calls, once the item itself was readable, is shown as "not
available" (the server does not offer the view, or you are not the item's owner) rather than an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Ctx, Patient, Practitioner, page_link

router = APIRouter()
THROUGH = {"practitioner": "named directly", "pin": "connected by Share PIN", "office": "member of a recipient office",
           "office_membership": "member of a recipient office", "patient": "the patient"}
ITEMS = {"charts": ("chart", "title", "/charts"), "documents": ("document", "filename", "/documents"),
         "forms": ("SmartForm", "title", "/forms")}


async def _or_unavailable(call: Any) -> tuple[Any, bool]:
    try:
        return await call, True
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None, False


@router.get("/{collection}/{item_id}/access")
async def who_can_see(collection: str, item_id: str, ctx: Practitioner) -> Response:
    if collection not in ITEMS:
        raise ApiError(404, "not found")
    kind, title_key, base = ITEMS[collection]
    item = await ctx.api.get(f"/v1/{collection}/{item_id}")
    access, available = await _or_unavailable(ctx.api.get(f"/v1/{collection}/{item_id}/access"))
    reads: list[dict[str, Any]] | None = None
    if collection == "charts":
        log, has_log = await _or_unavailable(ctx.api.get(f"/v1/charts/{item_id}/accesses", limit=50))
        reads = log["items"] if has_log else None
    offices = {}
    if available:
        sl = await ctx.api.get("/v1/sharing-list")
        offices = {o["id"]: o["name"] for o in sl["offices"]}
    return await ctx.render("access.html", title=f"Who can see this {kind}", kind=kind, item=item,
                            item_title=item.get(title_key, ""), back=f"{base}/{item_id}", available=available,
                            readers=(access or {}).get("items", []), through=THROUGH, offices=offices, reads=reads)


ACTIONS = {"shared": "Shared", "unshared": "Unshared", "revoked": "Share stopped", "expired": "Share expired",
           "accessed": "Read"}
RULES = {"chart": "This Specific Chart", "patient": "All Of This Patient's Charts", "all": "All Of My Charts",
         "share_label": "share label"}
ITEM_TYPES = {"chart": "a chart", "document": "a document", "form_submission": "a form submission"}


def disclosure_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accounting's columns (HIPAA 164.528): when, what happened, who disclosed, to whom (or who read
    it), what, the rule, consent attested by and when, expiry."""
    rows = []
    for e in items:
        accessed = e.get("action") == "accessed"
        recipients = ", ".join(r.get("name") or ("the patient" if r.get("kind") == "patient" else "an office"
                                                   if r.get("kind") == "office" else "a practitioner")
                               for r in e.get("recipients") or [])
        consent_by = e.get("consent_attested_by")
        rows.append({
            "when": e.get("at"), "event": ACTIONS.get(e.get("action", ""), e.get("action")),
            "by": e.get("accessor_name") or e.get("accessor_kind") if accessed else e.get("discloser_name"),
            "to": "" if accessed else recipients,
            "what": ITEM_TYPES.get(e.get("item_type", ""), e.get("item_type")),
            "rule": RULES.get(e.get("rule") or "", e.get("rule")),
            "consent": (e.get("discloser_name") if consent_by and consent_by == e.get("discloser_id") else consent_by)
            if consent_by else None,
            "consent_at": e.get("consent_attested_at"), "expires_at": e.get("expires_at"), "revoked_at": None,
        })
    return rows


def _period(ctx: Ctx) -> dict[str, str | None]:
    """The date filter of the form (YYYY-MM-DD) as the API's RFC 3339 bounds, whole days in UTC."""
    def bound(name: str, clock: str) -> str | None:
        value = ctx.query.get(name, "")
        return f"{value}T{clock}Z" if len(value) == 10 else None
    return {"from": bound("from", "00:00:00"), "to": bound("to", "23:59:59")}


async def _disclosures(ctx: Ctx, path: str, title: str, back: str, **extra: Any) -> Response:
    values = {k: ctx.query.get(k) for k in ("from", "to")}
    page, available = await _or_unavailable(ctx.api.get(path, limit=ctx.request.app.state.settings.page_size,
                                                        cursor=ctx.query.get("cursor"), **_period(ctx)))
    page = page or {"items": [], "next_cursor": None}
    return await ctx.render("disclosures.html", title=title, available=available, back=back,
                            rows=disclosure_rows(page["items"]), values=values,
                            csv=ctx.request.url.path + ".csv" + (f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
                            next_page=page_link(ctx.request, page.get("next_cursor")), **extra)


@router.get("/patients/{patient_id}/disclosures")
async def patient_disclosures(patient_id: str, ctx: Practitioner) -> Response:
    patient = await ctx.api.get(f"/v1/patients/{patient_id}")
    verified, _ = await _or_unavailable(ctx.api.get(f"/v1/patients/{patient_id}/disclosures/verify"))
    return await _disclosures(ctx, f"/v1/patients/{patient_id}/disclosures", f"Disclosures: {patient['name']}",
                              f"/patients/{patient_id}", patient=patient, verified=verified)


async def _csv(ctx: Ctx, path: str) -> Response:
    query = urlencode({k: v for k, v in _period(ctx).items() if v})
    upstream = await ctx.api.stream(path + (f"?{query}" if query else ""))
    headers = {"content-type": upstream.headers.get("content-type", "text/csv"),
               "content-disposition": upstream.headers.get("content-disposition", 'attachment; filename="disclosures.csv"'),
               "content-security-policy": "sandbox; default-src 'none'"}
    return StreamingResponse(upstream.aiter_raw(), headers=headers, background=BackgroundTask(upstream.aclose))


@router.get("/patients/{patient_id}/disclosures.csv")
async def patient_disclosures_csv(patient_id: str, ctx: Practitioner) -> Response:
    return await _csv(ctx, f"/v1/patients/{patient_id}/disclosures.csv")


@router.get("/portal/disclosures.csv")
async def my_disclosures_csv(ctx: Patient) -> Response:
    return await _csv(ctx, "/v1/portal/disclosures.csv")


@router.get("/portal/disclosures")
async def my_disclosures(ctx: Patient) -> Response:
    return await _disclosures(ctx, "/v1/portal/disclosures", "Who saw my data", "/portal")
