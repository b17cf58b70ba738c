"""Share PIN, connections, the sharing list, offices and members, patients (care team, portal invite)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from clinishare_web.api import ApiError
from clinishare_web.pages.common import Clinician, Member, Practitioner, all_items, page_link

router = APIRouter()


# ---- Share PIN (the user menu's "View Share PIN") ----------------------------------------------------

@router.get("/share-pin")
async def share_pin(ctx: Practitioner) -> Response:
    pin = await ctx.api.get("/v1/me/share-pin")
    return await ctx.render("share_pin.html", title="Your Share PIN", pin=pin["pin"])


@router.post("/share-pin/rotate")
async def rotate_pin(ctx: Practitioner) -> Response:
    await ctx.api.post("/v1/me/share-pin/rotate")
    return ctx.redirect("/share-pin", "Your Share PIN was replaced. The old PIN no longer works.")


# ---- connections and the sharing list ---------------------------------------------------------------

async def _connections_page(ctx: Member, status_code: int = 200, **extra: object) -> Response:
    page = await ctx.api.get("/v1/connections", cursor=ctx.query.get("cursor"), limit=50)
    return await ctx.render("connections.html", status_code=status_code, title="Connections",
                            connections=page["items"], next_page=page_link(ctx.request, page["next_cursor"]),
                            **extra)


@router.get("/connections")
async def connections(ctx: Member) -> Response:
    return await _connections_page(ctx)


@router.post("/connections")
async def connect(ctx: Practitioner) -> Response:
    pin = ctx.field("pin")
    try:
        conn = await ctx.api.post("/v1/connections", {"pin": pin}, known_fields=("pin",))
    except ApiError as exc:
        if exc.status not in (404, 409, 422, 429):
            raise
        return await _connections_page(ctx, status_code=exc.status, values={"pin": pin},
                                       errors={"pin": exc.fields.get("pin", exc.detail)})
    return ctx.redirect("/sharing-list", f"Connected to {conn['target_name']}: you can now share with them.")


@router.get("/connections/{connection_id}/delete")
async def confirm_delete_connection(connection_id: str, ctx: Member) -> Response:
    items = (await ctx.api.get("/v1/connections", limit=100))["items"]
    conn = next((c for c in items if c["id"] == connection_id), None)
    if conn is None:
        raise ApiError(404, "connection not found")
    return await ctx.render("confirm.html", title="Delete this connection?", action=f"/connections/{connection_id}/delete",
                            message=f"Delete the connection between {conn['owner_name']} and {conn['target_name']}? "
                            "Everything shared through it stops being visible at once.",
                            button="Delete connection", back="/connections")


@router.post("/connections/{connection_id}/delete")
async def delete_connection(connection_id: str, ctx: Member) -> Response:
    await ctx.api.delete(f"/v1/connections/{connection_id}")
    return ctx.redirect("/connections", "The connection was deleted.")


@router.get("/sharing-list")
async def sharing_list(ctx: Practitioner) -> Response:
    sl = await ctx.api.get("/v1/sharing-list")
    return await ctx.render("sharing_list.html", title="Your sharing list", sharing=sl)


# ---- offices -----------------------------------------------------------------------------------------

@router.get("/offices")
async def offices(ctx: Member) -> Response:
    me = await ctx.api.get("/v1/me")
    return await ctx.render("offices.html", title="Offices", offices=me["offices"])


@router.post("/offices")
async def create_office(ctx: Practitioner) -> Response:
    name = ctx.field("name")
    try:
        office = await ctx.api.post("/v1/offices", {"name": name}, known_fields=("name",))
    except ApiError as exc:
        me = await ctx.api.get("/v1/me")
        return await ctx.render("offices.html", status_code=exc.status, title="Offices", offices=me["offices"],
                                values={"name": name}, errors={"name": exc.fields.get("name", exc.detail)})
    return ctx.redirect(f"/offices/{office['id']}", f"Office {office['name']} created. You are its owner.")


async def _office_page(ctx: Member, office_id: str, status_code: int = 200, **extra: object) -> Response:
    office = await ctx.api.get(f"/v1/offices/{office_id}")
    return await ctx.render("office.html", status_code=status_code, title=office["name"], office=office,
                            is_owner=office["owner_id"] == ctx.session.account_id, **extra)


@router.get("/offices/{office_id}")
async def office(office_id: str, ctx: Member) -> Response:
    return await _office_page(ctx, office_id)


@router.post("/offices/{office_id}/members")
async def add_member(office_id: str, ctx: Practitioner) -> Response:
    values = {"email": ctx.field("email"), "role": ctx.field("role") or "practitioner"}
    try:
        await ctx.api.post(f"/v1/offices/{office_id}/members", values, known_fields=("email", "role"))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        field = "role" if "role" in exc.fields else "email"
        return await _office_page(ctx, office_id, status_code=exc.status, values=values,
                                  errors={field: exc.fields.get(field, exc.detail)})
    return ctx.redirect(f"/offices/{office_id}", "Member added.")


@router.get("/offices/{office_id}/members/{account_id}/remove")
async def confirm_remove_member(office_id: str, account_id: str, ctx: Member) -> Response:
    office = await ctx.api.get(f"/v1/offices/{office_id}")
    member = next((m for m in office["members"] if m["account_id"] == account_id), None)
    if member is None:
        raise ApiError(404, "not a member")
    leaving = account_id == ctx.session.account_id
    return await ctx.render(
        "confirm.html", title="Leave this office?" if leaving else "Remove this member?",
        action=f"/offices/{office_id}/members/{account_id}/remove", back=f"/offices/{office_id}",
        message=(f"Leave {office['name']}? " if leaving else f"Remove {member['name']} from {office['name']}? ")
        + "What was shared with the office stops being visible to them at once.",
        button="Leave office" if leaving else "Remove member")


@router.post("/offices/{office_id}/members/{account_id}/remove")
async def remove_member(office_id: str, account_id: str, ctx: Member) -> Response:
    await ctx.api.delete(f"/v1/offices/{office_id}/members/{account_id}")
    if account_id == ctx.session.account_id:
        return ctx.redirect("/offices", "You left the office.")
    return ctx.redirect(f"/offices/{office_id}", "Member removed.")


@router.post("/offices/{office_id}/share-pin/rotate")
async def rotate_office_pin(office_id: str, ctx: Practitioner) -> Response:
    await ctx.api.post(f"/v1/offices/{office_id}/share-pin/rotate")
    return ctx.redirect(f"/offices/{office_id}", "The Office Share PIN was replaced. The old PIN no longer works.")


# ---- patients ----------------------------------------------------------------------------------------

async def _patients_page(ctx: Practitioner, status_code: int = 200, **extra: object) -> Response:
    q = ctx.query.get("q", "")
    page = await ctx.api.get("/v1/patients", q=q, cursor=ctx.query.get("cursor"), limit=ctx.request.app.state.settings.page_size)
    return await ctx.render("patients.html", status_code=status_code, title="Patients", patients=page["items"],
                            q=q, next_page=page_link(ctx.request, page["next_cursor"]), **extra)


@router.get("/patients")
async def patients(ctx: Practitioner) -> Response:
    return await _patients_page(ctx)


@router.post("/patients")
async def register_patient(ctx: Practitioner) -> Response:
    values = {"name": ctx.field("name"), "email": ctx.field("email"), "date_of_birth": ctx.field("date_of_birth")}
    body = {k: v for k, v in values.items() if v}
    try:
        patient = await ctx.api.post("/v1/patients", body, known_fields=("name", "email", "date_of_birth"))
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _patients_page(ctx, status_code=422, values=values, errors=exc.fields or {"_form": exc.detail})
    return ctx.redirect(f"/patients/{patient['id']}", "Patient registered. You are in their care team.")


async def _patient_page(ctx: Practitioner, patient_id: str, status_code: int = 200, **extra: object) -> Response:
    patient = await ctx.api.get(f"/v1/patients/{patient_id}")
    sl = await ctx.api.get("/v1/sharing-list")
    known = {p["id"]: p["name"] for p in sl["practitioners"]}
    known[ctx.session.account_id or ""] = f"{ctx.session.name} (you)"
    team = [{"id": i, "name": known.get(i, "A practitioner")} for i in patient["care_team"]]
    candidates = [p for p in sl["practitioners"] if p["id"] not in patient["care_team"]]
    return await ctx.render("patient.html", status_code=status_code, title=patient["name"], patient=patient,
                            team=team, candidates=candidates, **extra)


@router.get("/patients/{patient_id}")
async def patient(patient_id: str, ctx: Practitioner) -> Response:
    return await _patient_page(ctx, patient_id)


@router.post("/patients/{patient_id}/care-team")
async def add_to_care_team(patient_id: str, ctx: Practitioner) -> Response:
    try:
        await ctx.api.post(f"/v1/patients/{patient_id}/care-team", {"practitioner_id": ctx.field("practitioner_id")},
                           known_fields=("practitioner_id",))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _patient_page(ctx, patient_id, status_code=exc.status,
                                   errors={"practitioner_id": exc.fields.get("practitioner_id", exc.detail)})
    return ctx.redirect(f"/patients/{patient_id}", "Added to the care team.")


@router.post("/patients/{patient_id}/portal-invite")
async def portal_invite(patient_id: str, ctx: Practitioner) -> Response:
    invite = await ctx.api.post(f"/v1/patients/{patient_id}/portal-invite")
    base = public_base(ctx)
    return await _patient_page(ctx, patient_id, invite=invite,
                               invite_link=f"{base}/portal/activate?invite={invite['invite_token']}")


@router.get("/me")
async def me(ctx: Clinician) -> Response:
    account = await ctx.api.get("/v1/me")
    prefs = await ctx.api.get("/v1/notification-preferences")
    return await ctx.render("me.html", title="Your account", account=account, prefs=prefs)


def public_base(ctx: Practitioner) -> str:
    """The address the visitor used (behind the gateway: its X-Forwarded-Host and -Proto)."""
    headers = ctx.request.headers
    host = headers.get("x-forwarded-host", "").split(",")[0].strip()
    if host:
        proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
        return f"{proto if proto in ('http', 'https') else 'http'}://{host}"
    return str(ctx.request.base_url).rstrip("/")


async def patient_options(ctx: Practitioner) -> list[dict[str, str]]:
    return [{"id": p["id"], "name": p["name"]} for p in await all_items(ctx.api, "/v1/patients")]
