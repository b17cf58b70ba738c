"""Documents: All Documents / a Patient Workspace / Shared With You, upload, select several and Assign
Labels (the Label Assignment Window, with share labels), a document's page, download, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Member, Practitioner, names, page_link
from clinishare_web.pages.identity import patient_options

router = APIRouter()


async def _list(ctx: Practitioner, status_code: int = 200, **extra: Any) -> Response:
    scope = "shared" if ctx.query.get("scope") == "shared" else "mine"
    patient_id = ctx.query.get("patient_id", "")
    page = await ctx.api.get("/v1/documents", scope=scope, patient_id=patient_id or None,
                             cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    patients = await patient_options(ctx)
    workspace = next((p for p in patients if p["id"] == patient_id), None)
    return await ctx.render("documents.html", status_code=status_code, title="Documents", scope=scope,
                            patients=patients, workspace=workspace, patient_id=patient_id, documents=page["items"],
                            names={p["id"]: p["name"] for p in patients},
                            next_page=page_link(ctx.request, page["next_cursor"]), **extra)


@router.get("/documents")
async def documents(ctx: Practitioner) -> Response:
    return await _list(ctx)


@router.post("/documents")
async def upload(ctx: Practitioner) -> Response:
    assert ctx.form is not None
    upload = ctx.form.get("file")
    patient_id = ctx.field("patient_id")
    back = f"/documents?patient_id={patient_id}" if patient_id else "/documents"
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _list(ctx, status_code=422, errors={"file": "Choose a file to upload."})
    data = {"patient_id": patient_id} if patient_id else None
    try:
        doc = await ctx.api.call("POST", "/v1/documents", data=data,
                                 files={"file": (upload.filename, upload.file, upload.content_type or "application/octet-stream")})
    except ApiError as exc:
        if exc.status not in (413, 422):
            raise
        return await _list(ctx, status_code=exc.status, errors={"file": exc.detail})
    finally:
        await upload.close()
    return ctx.redirect(back, f"Uploaded {doc['filename']}.")


# ---- the Label Assignment Window ---------------------------------------------------------------------

async def _labels_window(ctx: Practitioner, ids: list[str], status_code: int = 200, **extra: Any) -> Response:
    docs = [await ctx.api.get(f"/v1/documents/{i}") for i in ids]
    sl = await ctx.api.get("/v1/sharing-list")
    workspaces = {d["patient_id"] for d in docs if d["patient_id"]}
    patients = await patient_options(ctx)
    return await ctx.render("labels.html", status_code=status_code, title="Assign Labels", documents=docs,
                            patients=patients, sharing=sl, workspaces=workspaces, **extra)


@router.post("/documents/select")
async def select(ctx: Practitioner) -> Response:
    ids = ctx.fields("document_ids")
    if not ids:
        ctx.session.add_flash("Select at least one document, then choose Assign Labels.")
        return ctx.redirect(ctx.field("back") or "/documents")
    return await _labels_window(ctx, ids)


@router.post("/documents/labels")
async def apply_labels(ctx: Practitioner) -> Response:
    ids = ctx.fields("document_ids")
    labels = [x.strip() for x in ctx.field("labels").split(",") if x.strip()]
    remove_labels = [x.strip() for x in ctx.field("remove_labels").split(",") if x.strip()]
    offices = [{"office_id": v.split(":", 1)[0], "audience": v.split(":", 1)[1]}
               for v in ctx.fields("offices") if ":" in v]
    add: dict[str, Any] = {"labels": labels, "patient_ids": ctx.fields("patient_ids"),
                           "practitioner_ids": ctx.fields("practitioner_ids"), "offices": offices}
    remove: dict[str, Any] = {"labels": remove_labels, "patient_ids": ctx.fields("remove_patient_ids"),
                              "practitioner_ids": ctx.fields("remove_practitioner_ids"),
                              "offices": [{"office_id": v.split(":", 1)[0], "audience": v.split(":", 1)[1]}
                                          for v in ctx.fields("remove_offices") if ":" in v]}
    try:
        await ctx.api.post("/v1/documents/labels", {"document_ids": ids, "add": add, "remove": remove},
                           known_fields=("labels", "patient_ids", "practitioner_ids", "offices"))
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _labels_window(ctx, ids, status_code=422, errors={**exc.fields, "_form": exc.detail},
                                    values={"labels": ctx.field("labels"), **add})
    count = len(ids)
    return ctx.redirect("/documents", f"Labels applied to {count} document{'s' if count != 1 else ''}.")


# ---- one document --------------------------------------------------------------------------------------

@router.get("/documents/{document_id}")
async def document(document_id: str, ctx: Practitioner) -> Response:
    doc = await ctx.api.get(f"/v1/documents/{document_id}")
    return await ctx.render("document.html", title=doc["filename"], doc=doc, names=await names(ctx.api),
                            is_owner=doc["owner_id"] == ctx.session.account_id)


@router.get("/documents/{document_id}/content")
async def content(document_id: str, ctx: Member) -> Response:
    upstream = await ctx.api.stream(f"/v1/documents/{document_id}/content")
    headers = {k: v for k, v in upstream.headers.items()
               if k.lower() in ("content-type", "content-length", "content-disposition")}
    headers["content-disposition"] = upstream.headers.get("content-disposition", "attachment")
    # a download is never rendered in the console's origin: attachment + its own sandboxing CSP
    headers["content-security-policy"] = "sandbox; default-src 'none'"
    return StreamingResponse(upstream.aiter_raw(), status_code=200, headers=headers,
                             background=BackgroundTask(upstream.aclose))


@router.get("/documents/{document_id}/delete")
async def confirm_delete(document_id: str, ctx: Practitioner) -> Response:
    doc = await ctx.api.get(f"/v1/documents/{document_id}")
    return await ctx.render("confirm.html", title="Delete this document?", action=f"/documents/{document_id}/delete",
                            message=f"Delete {doc['filename']}? Everyone it is shared with loses it at once.",
                            button="Delete document", back=f"/documents/{document_id}")


@router.post("/documents/{document_id}/delete")
async def delete(document_id: str, ctx: Practitioner) -> Response:
    await ctx.api.delete(f"/v1/documents/{document_id}")
    return ctx.redirect("/documents", "The document was deleted.")
