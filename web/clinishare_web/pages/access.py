"""Who can see this (a chart, a document, a form) and the accounting of disclosures (SPEC 10.2).

These pages call `GET /v1/{charts|documents|forms}/{id}/access`, `/v1/patients/{id}/disclosures` and
`/v1/portal/disclosures`. A 404 from those calls, once the item itself was readable, is shown as "not
available" (the server does not offer the view, or you are not the item's owner) rather than an error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

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


def disclosure_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns of the accounting (HIPAA 164.528): when, who disclosed, to whom, what, the rule, consent
    attested by and when, expiry, revocation; read tolerantly from the audit service's entries."""
    def pick(e: dict[str, Any], *keys: str) -> Any:
        return next((e[k] for k in keys if e.get(k) not in (None, "", [])), None)

    def who(value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v.get("name") or v.get("id") if isinstance(v, dict) else v) for v in value)
        if isinstance(value, dict):
            return value.get("name") or value.get("id")
        return value

    return [{
        "when": pick(e, "time", "when", "disclosed_at", "accessed_at", "created_at"),
        "event": pick(e, "type", "kind", "action", "event"),
        "by": who(pick(e, "disclosed_by_name", "discloser_name", "actor_name", "by_name", "disclosed_by", "actor")),
        "to": who(pick(e, "recipients", "recipient_names", "to", "recipient_name", "recipient")),
        "what": pick(e, "what", "item_kind", "object_type", "item_type", "subject_kind"),
        "rule": pick(e, "rule", "scope"),
        "consent": who(pick(e, "consent_attested_by_name", "consent_attested_by")),
        "consent_at": pick(e, "consent_attested_at"),
        "expires_at": pick(e, "expires_at"),
        "revoked_at": pick(e, "revoked_at"),
    } for e in items]


async def _disclosures(ctx: Ctx, path: str, title: str, back: str, **extra: Any) -> Response:
    params = {k: ctx.query.get(k) for k in ("from", "to", "cursor")}
    page, available = await _or_unavailable(ctx.api.get(path, limit=ctx.request.app.state.settings.page_size,
                                                        **params))
    page = page or {"items": [], "next_cursor": None}
    return await ctx.render("disclosures.html", title=title, available=available, back=back,
                            rows=disclosure_rows(page["items"]), values=params,
                            next_page=page_link(ctx.request, page.get("next_cursor")), **extra)


@router.get("/patients/{patient_id}/disclosures")
async def patient_disclosures(patient_id: str, ctx: Practitioner) -> Response:
    patient = await ctx.api.get(f"/v1/patients/{patient_id}")
    return await _disclosures(ctx, f"/v1/patients/{patient_id}/disclosures", f"Disclosures: {patient['name']}",
                              f"/patients/{patient_id}", patient=patient)


@router.get("/portal/disclosures")
async def my_disclosures(ctx: Patient) -> Response:
    return await _disclosures(ctx, "/v1/portal/disclosures", "Who saw my data", "/portal")
