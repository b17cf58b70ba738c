"""A client generated from the combined OpenAPI document with openapi-python-client (from PyPI, at test
time, into a temporary folder: nothing generated is committed) plays the README story against the
all-in-one system, and gets a 422 and a 404 as typed ``Problem`` objects instead of crashing on them."""

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from clinishare_allinone.system import ServiceOverrides, create_system
from clinishare_identity.settings import IdentitySettings
from clinishare_shared.testing import LiveServer, wait_for

PACKAGE = "clinishare_generated_client"


async def generate(document: dict[str, Any], into: Path) -> Any:
    spec = into / "openapi.json"
    spec.write_text(json.dumps(document))
    tool = Path(sys.executable).with_name("openapi-python-client")
    assert tool.exists(), "openapi-python-client is in requirements/test.in"
    proc = await asyncio.create_subprocess_exec(
        str(tool), "generate", "--path", str(spec), "--meta", "none", "--output-path", str(into / PACKAGE),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=into)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0 and (into / PACKAGE / "client.py").exists(), out.decode()
    sys.path.insert(0, str(into))
    importlib.invalidate_caches()
    return importlib.import_module(PACKAGE)


def api(name: str) -> Any:
    """``api("charts.charts_create")``: a generated operation module."""
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


async def test_a_generated_client_plays_the_readme_story_and_types_its_errors(tmp_path: Path) -> None:
    overrides = ServiceOverrides(identity=IdentitySettings(argon2_time_cost=1, argon2_memory_cost=8,
                                                           argon2_parallelism=1))
    try:
        async with LiveServer(create_system(overrides)) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                document = (await http.get("/openapi.json")).json()
            package = await generate(document, tmp_path)
            await story(package, server.url)
    finally:
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


async def story(package: Any, base_url: str) -> None:
    Problem = model("Problem")
    anonymous = package.Client(base_url=base_url)

    # 1. two practitioners sign up and log in; a weak password is a typed 422 naming its rule
    weak = await api("accounts.accounts_create").asyncio_detailed(client=anonymous, body=model("AccountCreate")(
        email="alice@harbour-clinic.org", password="password", name="Dr Alice",
        kind=model("AccountCreateKind").PRACTITIONER))
    assert weak.status_code == 422 and isinstance(weak.parsed, Problem)
    assert weak.parsed.status == 422 and weak.parsed.additional_properties["rule"] == "min_length"
    tokens, ids = {}, {}
    for who in ("alice", "bob"):
        email = f"{who}@harbour-clinic.org"
        created = await api("accounts.accounts_create").asyncio(client=anonymous, body=model("AccountCreate")(
            email=email, password="correct horse 42", name=f"Dr {who.title()}",
            kind=model("AccountCreateKind").PRACTITIONER))
        ids[who] = created.id
        token = await api("accounts.auth_token").asyncio(client=anonymous, body=model("TokenRequest")(
            email=email, password="correct horse 42"))
        tokens[who] = package.AuthenticatedClient(base_url=base_url, token=token.access_token)
    alice, bob = tokens["alice"], tokens["bob"]

    # 2. Bob's Share PIN, entered by Alice: Bob is on her sharing list
    pin = await api("accounts.me_share_pin_get").asyncio(client=bob)
    await api("connections.connections_create").asyncio(client=alice, body=model("ConnectionCreate")(pin=pin.pin))
    sharing = await api("connections.sharing_list_get").asyncio(client=alice)
    assert [p.id for p in sharing.practitioners] == [ids["bob"]]

    # 3. a patient, a chart, shared with Bob with consent
    patient = await api("patients.patients_create").asyncio(client=alice, body=model("PatientCreate")(
        name="Jane Roe", email="jane@patient-mail.org"))
    chart = await api("charts.charts_create").asyncio(client=alice, body=model("ChartCreate")(
        patient_id=patient.id, title="Rash follow-up", body="Itchy for two weeks."))

    async def shared() -> Any:
        r = await api("chart_shares.chart_shares_create").asyncio_detailed(client=alice, body=model("GrantCreate")(
            rule=model("GrantCreateRule").CHART, chart_id=chart.id, practitioner_ids=[ids["bob"]], office_ids=[],
            patient_consent=True))
        return r.parsed if r.status_code == 201 else None

    await wait_for(shared, message="the chart service knows the connection")

    # 4. Bob finds it and adds a note; Alice sees the note
    found = await api("charts.charts_shared_with_me_list").asyncio(client=bob, q="rash")
    assert [c.title for c in found.items] == ["Rash follow-up"]
    await api("charts.charts_notes_create").asyncio(client=bob, chart_id=chart.id,
                                                    body=model("NoteCreate")(text="Agree: try an antihistamine."))
    read = await api("charts.charts_get").asyncio(client=alice, chart_id=chart.id)
    assert [n.text for n in read.notes] == ["Agree: try an antihistamine."]

    # a chart nobody may see is a typed 404, not an exception
    missing = await api("charts.charts_get").asyncio_detailed(client=bob, chart_id="0123456789abcdef01234567")
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem) and missing.parsed.status == 404

    # 5. (documents are multipart: their share is covered by the README test itself) the portal invite, Jane's
    # account and log-in
    invite = await api("patients.patients_portal_invite_create").asyncio(client=alice, patient_id=patient.id)
    await api("patients.portal_activate").asyncio(client=anonymous, body=model("PortalActivate")(
        invite_token=invite.invite_token, password="my own quiet pass"))
    jane_token = await api("accounts.auth_token").asyncio(client=anonymous, body=model("TokenRequest")(
        email="jane@patient-mail.org", password="my own quiet pass"))
    jane = package.AuthenticatedClient(base_url=base_url, token=jane_token.access_token)

    # 6. a SmartForm shared with Bob, assigned by Alice, filled by Jane, read by Alice
    form_body = model("FormCreate").from_dict({
        "title": "Sleep check",
        "fields": [{"type": "scale", "key": "quality", "label": "Sleep quality", "required": True, "min": 1, "max": 5}],
        "sharing": {"allow_others": True, "practitioner_ids": [ids["bob"]], "office_ids": [],
                    "author_sees_all_submissions": True, "others_see_all_submissions": False}})

    async def form_made() -> Any:
        r = await api("forms.forms_create").asyncio_detailed(client=alice, body=form_body)
        return r.parsed if r.status_code == 201 else None

    form = await wait_for(form_made, message="the forms service knows the connection")
    assignment = await wait_for(lambda: api("assignments.forms_assignments_create").asyncio(
        client=alice, form_id=form.id, body=model("AssignmentCreate")(patient_id=patient.id)),
        message="the forms service knows the patient")
    submission_body = model("SubmissionCreate").from_dict({"answers": {"quality": 4}})
    submitted = await api("assignments.assignments_submission_create").asyncio_detailed(
        client=jane, assignment_id=assignment.id, body=submission_body)
    assert submitted.status_code == 201, submitted.content
    submissions = await api("submissions.forms_submissions_list").asyncio(client=alice, form_id=form.id)
    assert len(submissions.items) == 1

    # 7. inboxes: Bob heard of the connection and of the chart
    async def bob_heard() -> Any:
        inbox = await api("notifications.notifications_list").asyncio(client=bob)
        return len(inbox.items) >= 2

    await wait_for(bob_heard, message="Bob's notifications")
