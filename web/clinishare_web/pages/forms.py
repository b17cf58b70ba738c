"""SmartForms: the list, the builder (fields and the sharing options of the article), a form's page with
"assign to a patient", its submissions and the CSV export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Practitioner, names, page_link
from clinishare_web.pages.identity import patient_options

router = APIRouter()
FIELD_TYPES = ["text", "textarea", "number", "date", "choice", "multi_choice", "checkbox", "scale"]
BUILDER_ROWS = 6  # blank field rows without JavaScript; the script adds more on demand


def _fields_from_form(ctx: Practitioner) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The builder's rows as API fields (blank rows skipped), and the rows as typed (to show them again)."""
    assert ctx.form is not None
    rows = []
    fields = []
    for i in range(int(ctx.field("rows") or BUILDER_ROWS)):
        row = {k: ctx.field(f"f{i}_{k}") for k in ("type", "key", "label", "options", "min", "max", "required")}
        rows.append(row)
        if not row["label"] and not row["key"]:
            continue
        field: dict[str, Any] = {"type": row["type"] or "text", "label": row["label"],
                                 "key": row["key"] or _key_of(row["label"], i), "required": row["required"] == "on"}
        if field["type"] in ("choice", "multi_choice"):
            field["options"] = [o.strip() for o in row["options"].split(",") if o.strip()]
        if field["type"] in ("number", "scale"):
            for bound in ("min", "max"):
                if row[bound]:
                    try:
                        field[bound] = int(row[bound]) if field["type"] == "scale" else float(row[bound])
                    except ValueError:
                        field[bound] = row[bound]  # the API says what is wrong with it
            if field["type"] == "scale":
                field.setdefault("min", 1)
                field.setdefault("max", 5)
        fields.append(field)
    return fields, rows


def _key_of(label: str, i: int) -> str:
    key = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")[:40]
    return key if key[:1].isalpha() else f"q{i + 1}_{key}".rstrip("_")


def _sharing_from_form(ctx: Practitioner) -> dict[str, Any]:
    return {"allow_others": ctx.field("allow_others") == "on",
            "practitioner_ids": ctx.fields("practitioner_ids"), "office_ids": ctx.fields("office_ids"),
            "author_sees_all_submissions": ctx.field("author_sees_all_submissions") == "on",
            "others_see_all_submissions": ctx.field("others_see_all_submissions") == "on"}


@router.get("/forms")
async def forms(ctx: Practitioner) -> Response:
    page = await ctx.api.get("/v1/forms", cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    return await ctx.render("forms.html", title="SmartForms", forms=page["items"], names=await names(ctx.api),
                            next_page=page_link(ctx.request, page["next_cursor"]))


async def _builder(ctx: Practitioner, status_code: int = 200, **extra: Any) -> Response:
    sl = await ctx.api.get("/v1/sharing-list")
    extra.setdefault("rows", [{} for _ in range(BUILDER_ROWS)])
    extra.setdefault("sharing_values", {})
    return await ctx.render("form_builder.html", status_code=status_code, title="Build a SmartForm",
                            field_types=FIELD_TYPES, sharing=sl, **extra)


@router.get("/forms/new")
async def new_form(ctx: Practitioner) -> Response:
    return await _builder(ctx)


def _field_errors(exc: ApiError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.problem.get("errors") or []:
        loc = err.get("loc", []) if isinstance(err, dict) else []
        if len(loc) >= 3 and loc[1] == "fields" and isinstance(loc[2], int):
            errors.setdefault(f"f{loc[2]}", str(err.get("msg", "invalid")).removeprefix("Value error, "))
    return errors


@router.post("/forms/new")
async def create_form(ctx: Practitioner) -> Response:
    fields, rows = _fields_from_form(ctx)
    sharing = _sharing_from_form(ctx)
    title = ctx.field("title")
    if not fields:
        return await _builder(ctx, status_code=422, rows=rows, values={"title": title}, sharing_values=sharing,
                              errors={"fields": "Add at least one field (a label is enough)."})
    try:
        form = await ctx.api.post("/v1/forms", {"title": title, "fields": fields, "sharing": sharing},
                                  known_fields=("title", "fields", "sharing"))
    except ApiError as exc:
        if exc.status != 422:
            raise
        # a row's error goes next to its row, numbered like the rows that were filled in
        filled = [i for i, r in enumerate(rows) if r["label"] or r["key"]]
        row_errors = {f"f{filled[int(k[1:])]}": v for k, v in _field_errors(exc).items() if int(k[1:]) < len(filled)}
        errors = {**{k: v for k, v in exc.fields.items() if k in ("title",)}, **row_errors}
        if any(k in exc.detail + str(exc.fields) for k in ("allow_others", "practitioner", "office", "sharing")):
            errors["sharing"] = next((v for k, v in exc.fields.items() if k not in ("title",) and not k.startswith("f")),
                                     exc.detail)
        errors.setdefault("_form", exc.detail)
        return await _builder(ctx, status_code=422, rows=rows, values={"title": title}, sharing_values=sharing,
                              errors=errors)
    return ctx.redirect(f"/forms/{form['id']}", "SmartForm saved.")


async def _form_page(ctx: Practitioner, form_id: str, status_code: int = 200, **extra: Any) -> Response:
    form = await ctx.api.get(f"/v1/forms/{form_id}")
    sl = await ctx.api.get("/v1/sharing-list") if form["can_edit"] else {"practitioners": [], "offices": []}
    return await ctx.render("form.html", status_code=status_code, title=form["title"], form=form, sharing=sl,
                            patients=await patient_options(ctx), names=await names(ctx.api), **extra)


@router.get("/forms/{form_id}")
async def form(form_id: str, ctx: Practitioner) -> Response:
    return await _form_page(ctx, form_id)


@router.post("/forms/{form_id}/sharing")
async def update_sharing(form_id: str, ctx: Practitioner) -> Response:
    sharing = _sharing_from_form(ctx)
    try:
        await ctx.api.patch(f"/v1/forms/{form_id}", {"sharing": sharing}, known_fields=("sharing",))
    except ApiError as exc:
        if exc.status not in (412, 422):
            raise
        return await _form_page(ctx, form_id, status_code=exc.status, errors={"sharing": exc.detail if not exc.fields
                                                                              else next(iter(exc.fields.values()))})
    return ctx.redirect(f"/forms/{form_id}", "Sharing options saved.")


@router.post("/forms/{form_id}/assignments")
async def assign(form_id: str, ctx: Practitioner) -> Response:
    patient_id = ctx.field("patient_id")
    try:
        await ctx.api.post(f"/v1/forms/{form_id}/assignments", {"patient_id": patient_id}, known_fields=("patient_id",))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _form_page(ctx, form_id, status_code=exc.status,
                                errors={"patient_id": exc.fields.get("patient_id", exc.detail)})
    return ctx.redirect(f"/forms/{form_id}", "Assigned: the patient will find it in their portal.")


@router.get("/forms/{form_id}/submissions")
async def submissions(form_id: str, ctx: Practitioner) -> Response:
    form = await ctx.api.get(f"/v1/forms/{form_id}")
    page = await ctx.api.get(f"/v1/forms/{form_id}/submissions", cursor=ctx.query.get("cursor"),
                             limit=ctx.request.app.state.settings.page_size)
    return await ctx.render("submissions.html", title=f"Submissions: {form['title']}", form=form,
                            submissions=page["items"], names=await names(ctx.api),
                            next_page=page_link(ctx.request, page["next_cursor"]))


@router.get("/forms/{form_id}/submissions.csv")
async def submissions_csv(form_id: str, ctx: Practitioner) -> Response:
    upstream = await ctx.api.stream(f"/v1/forms/{form_id}/submissions.csv")
    headers = {"content-type": upstream.headers.get("content-type", "text/csv"),
               "content-disposition": upstream.headers.get("content-disposition",
                                                           f'attachment; filename="form-{form_id}.csv"'),
               "content-security-policy": "sandbox; default-src 'none'"}
    return StreamingResponse(upstream.aiter_raw(), headers=headers, background=BackgroundTask(upstream.aclose))
