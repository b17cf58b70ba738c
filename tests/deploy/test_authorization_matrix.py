"""Authorization matrix: every /v1 route of the running system (the all-in-one process, real identity,
every service) called by each kind of caller, with the status each one must get. The table is the
contract; a route of the API without a row fails the test, so a new route cannot ship unjudged.

Callers: ``owner`` (Alice: owns the office, the patient's record, the chart, document and form), ``recipient``
(Bob: on Alice's sharing list through her PIN connection, each item shared with him), ``stranger`` (Carol: a
practitioner nobody shared with), ``staff`` (Sam: staff member of Alice's office), ``patient`` (Jane, whose
chart, document and form assignment these are, with a portal account), ``other_patient`` (Pat, another
portal patient), ``anonymous`` (no token). Rows run in table order, and within a row the callers expected
to succeed run last, so a call that changes something (a delete) does so after the refusals were checked;
destructive rows come last and use objects of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from clinishare_allinone.system import ServiceOverrides, create_system
from clinishare_identity.settings import IdentitySettings
from clinishare_shared.openapi import combined_openapi
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import LiveServer, wait_for

ROLES = ("owner", "recipient", "stranger", "staff", "patient", "other_patient", "anonymous")
PASSWORD = "correct horse 42"
BAD = "0123456789abcdef01234567"  # a well-formed id of nothing


@dataclass
class World:
    http: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}

    async def call(self, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, path.format(**self.ids), headers=self.auth(role), **kw)


async def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


async def build(http: httpx.AsyncClient) -> World:
    w = World(http)
    for role, name, kind in (("owner", "Alice", "practitioner"), ("recipient", "Bob", "practitioner"),
                             ("stranger", "Carol", "practitioner"), ("staff", "Sam", "staff"),
                             ("extra", "Erin", "practitioner")):
        email = f"{name.lower()}@matrix-clinic.org"
        w.ids[role] = (await _ok(await http.post("/v1/accounts", json={
            "email": email, "password": PASSWORD, "name": f"Dr {name}", "kind": kind})))["id"]
        w.tokens[role] = (await _ok(await http.post("/v1/auth/token", json={"email": email, "password": PASSWORD}),
                                    200))["access_token"]
    office = await _ok(await w.call("owner", "POST", "/v1/offices", json={"name": "Harbour"}))
    w.ids["office"] = office["id"]
    for name, role in (("sam", "staff"), ("erin", "practitioner")):
        await _ok(await w.call("owner", "POST", "/v1/offices/{office}/members",
                               json={"email": f"{name}@matrix-clinic.org", "role": role}))
    pin = (await _ok(await w.call("recipient", "GET", "/v1/me/share-pin"), 200))["pin"]
    w.ids["connection"] = (await _ok(await w.call("owner", "POST", "/v1/connections", json={"pin": pin})))["id"]
    for role, name in (("patient", "Jane"), ("other_patient", "Pat")):
        email = f"{name.lower()}@matrix-mail.org"
        pid = (await _ok(await w.call("owner", "POST", "/v1/patients", json={"name": f"{name} Roe", "email": email})))["id"]
        w.ids[f"{role}_id"] = pid
        invite = (await _ok(await w.call("owner", "POST", f"/v1/patients/{pid}/portal-invite")))["invite_token"]
        await _ok(await http.post("/v1/portal/activate", json={"invite_token": invite, "password": "quiet river 42"}))
        w.tokens[role] = (await _ok(await http.post("/v1/auth/token", json={
            "email": email, "password": "quiet river 42"}), 200))["access_token"]
    # care team: the extra practitioner joins Jane's, so the owner may later leave it (the last one cannot)
    await _ok(await w.call("owner", "POST", "/v1/patients/{patient_id}/care-team",
                           json={"practitioner_id": w.ids["extra"]}), 200)

    chart = await _ok(await w.call("owner", "POST", "/v1/charts", json={
        "patient_id": w.ids["patient_id"], "title": "Rash", "body": "Itchy."}))
    w.ids["chart"] = chart["id"]

    async def share_chart() -> str | None:
        r = await w.call("owner", "POST", "/v1/chart-shares", json={
            "rule": "chart", "chart_id": w.ids["chart"], "practitioner_ids": [w.ids["recipient"]], "office_ids": [],
            "patient_consent": True})
        return r.json()["id"] if r.status_code == 201 else None

    # the charts service learns of the connection through events: share once it has
    w.ids["grant"] = await wait_for(share_chart, message="chart share accepted")
    w.ids["grant2"] = await wait_for(share_chart, message="second chart share")
    for key in ("document", "document2"):
        w.ids[key] = (await _ok(await w.call("owner", "POST", "/v1/documents", files={
            "file": ("labs.txt", b"CBC normal", "text/plain")}, data={"patient_id": w.ids["patient_id"]})))["id"]

    async def share_documents() -> bool:
        r = await w.call("owner", "POST", "/v1/documents/labels", json={
            "document_ids": [w.ids["document"], w.ids["document2"]],
            "add": {"labels": ["labs"], "patient_ids": [w.ids["patient_id"]], "practitioner_ids": [w.ids["recipient"]]}})
        return r.status_code == 200

    await wait_for(share_documents, message="documents shared")

    async def make_form() -> str | None:
        r = await w.call("owner", "POST", "/v1/forms", json={
            "title": "Sleep", "fields": [{"type": "scale", "key": "q", "label": "Quality", "required": True,
                                          "min": 1, "max": 5}],
            "sharing": {"allow_others": True, "practitioner_ids": [w.ids["recipient"]], "office_ids": [],
                        "author_sees_all_submissions": True, "others_see_all_submissions": False}})
        return r.json()["id"] if r.status_code == 201 else None

    w.ids["form"] = await wait_for(make_form, message="form shared")

    async def assign() -> str | None:
        r = await w.call("owner", "POST", "/v1/forms/{form}/assignments", json={"patient_id": w.ids["patient_id"]})
        return r.json()["id"] if r.status_code == 201 else None

    w.ids["assignment"] = await wait_for(assign, message="form assigned")

    async def jane_notified() -> str | None:
        items = (await w.call("patient", "GET", "/v1/notifications")).json()["items"]
        return items[0]["id"] if items else None

    w.ids["notification"] = await wait_for(jane_notified, message="a notification for the patient")
    w.ids["bad"] = BAD
    return w


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: dict[str, int]
    body: Callable[[World], dict[str, Any]] | None = None
    order: tuple[str, ...] | None = None  # default: refusals first, then the callers expected to succeed

    def kwargs(self, w: World) -> dict[str, Any]:
        if self.body is None:
            return {}
        return self.body(w)


def j(value: Any) -> Callable[[World], dict[str, Any]]:
    """A JSON body; strings may name ids as {name}."""
    def build(w: World) -> dict[str, Any]:
        def fill(v: Any) -> Any:
            if isinstance(v, str):
                return v.format(**w.ids)
            if isinstance(v, list):
                return [fill(x) for x in v]
            if isinstance(v, dict):
                return {k: fill(x) for k, x in v.items()}
            return v
        return {"json": fill(value)}
    return build


def expect(owner: int, recipient: int, stranger: int, staff: int, patient: int, other_patient: int,
           anonymous: int = 401) -> dict[str, int]:
    return dict(zip(ROLES, (owner, recipient, stranger, staff, patient, other_patient, anonymous), strict=True))


# fmt: off
#            owner recipient stranger staff patient other_patient anonymous
TABLE: list[Row] = [
    # identity: accounts, log-in, me
    Row("POST", "/v1/accounts", expect(409, 409, 409, 409, 409, 409, 409),  # a taken e-mail, whoever asks
        j({"email": "alice@matrix-clinic.org", "password": PASSWORD, "name": "X", "kind": "practitioner"})),
    Row("POST", "/v1/auth/token", expect(200, 200, 200, 200, 200, 200, 200),
        j({"email": "carol@matrix-clinic.org", "password": PASSWORD})),
    Row("GET", "/v1/me", expect(200, 200, 200, 200, 200, 200)),
    Row("GET", "/v1/me/share-pin", expect(200, 200, 200, 403, 403, 403)),
    Row("GET", "/v1/sharing-list", expect(200, 200, 200, 403, 403, 403)),
    Row("GET", "/v1/connections", expect(200, 200, 200, 200, 200, 200)),
    Row("POST", "/v1/connections", expect(404, 404, 404, 403, 403, 403), j({"pin": "0000-0000-00"})),
    Row("POST", "/v1/me/share-pin/rotate", expect(200, 200, 200, 403, 403, 403)),
    # offices
    Row("POST", "/v1/offices", expect(422, 422, 422, 403, 403, 403), j({})),
    Row("GET", "/v1/offices/{office}", expect(200, 404, 404, 200, 404, 404)),
    Row("POST", "/v1/offices/{office}/members", expect(422, 404, 404, 403, 404, 404),
        j({"email": "nobody@matrix-clinic.org", "role": "staff"})),
    Row("POST", "/v1/offices/{office}/share-pin/rotate", expect(200, 404, 404, 403, 404, 404)),
    # patients
    Row("POST", "/v1/patients", expect(422, 422, 422, 403, 403, 403), j({})),
    Row("GET", "/v1/patients", expect(200, 200, 200, 403, 403, 403)),
    Row("GET", "/v1/patients/{patient_id}", expect(200, 404, 404, 404, 200, 404)),  # Jane reads her own record
    Row("POST", "/v1/patients/{patient_id}/care-team", expect(422, 404, 404, 403, 403, 403), j({})),
    # a new invite for an activated patient is issued, and refused at redemption
    Row("POST", "/v1/patients/{patient_id}/portal-invite", expect(201, 404, 404, 403, 403, 403)),
    Row("POST", "/v1/portal/activate", expect(422, 422, 422, 422, 422, 422, 422),
        j({"invite_token": "no-such-invite", "password": "quiet river 42"})),
    # charts
    Row("POST", "/v1/charts", expect(422, 422, 422, 403, 403, 403), j({})),
    # lists are the caller's own: anyone signed in gets theirs (empty for who writes or receives no chart)
    Row("GET", "/v1/charts", expect(200, 200, 200, 200, 200, 200)),
    Row("GET", "/v1/charts/shared-with-me", expect(200, 200, 200, 200, 200, 200)),
    Row("GET", "/v1/charts/{chart}", expect(200, 200, 404, 404, 404, 404)),
    Row("PATCH", "/v1/charts/{chart}", expect(200, 403, 404, 404, 404, 404), j({"title": "Rash, better"})),
    Row("POST", "/v1/charts/{chart}/notes", expect(201, 201, 404, 404, 404, 404), j({"text": "Seen."})),
    Row("GET", "/v1/charts/{chart}/access", expect(200, 404, 404, 404, 404, 404)),
    Row("GET", "/v1/charts/{chart}/accesses", expect(200, 404, 404, 404, 404, 404)),
    Row("POST", "/v1/chart-shares", expect(422, 422, 422, 403, 403, 403), j({})),
    Row("GET", "/v1/chart-shares", expect(200, 200, 200, 200, 200, 200)),
    # documents
    Row("POST", "/v1/documents", expect(201, 201, 201, 403, 403, 403),
        lambda w: {"files": {"file": ("note.txt", b"hello", "text/plain")}}),
    Row("POST", "/v1/documents/labels", expect(422, 422, 422, 403, 403, 403), j({})),
    Row("GET", "/v1/documents", expect(200, 200, 200, 200, 403, 403)),  # staff receive office shares
    Row("GET", "/v1/documents/{document}", expect(200, 200, 404, 404, 200, 404)),
    Row("GET", "/v1/documents/{document}/content", expect(200, 200, 404, 404, 200, 404)),
    Row("GET", "/v1/documents/{document}/access", expect(200, 404, 404, 404, 404, 404)),
    Row("GET", "/v1/portal/documents", expect(403, 403, 403, 403, 200, 200)),
    # forms
    Row("POST", "/v1/forms", expect(422, 422, 422, 403, 403, 403), j({})),
    Row("GET", "/v1/forms", expect(200, 200, 200, 403, 403, 403)),
    # forms are practitioners' tools: staff and patients are the wrong kind of account (403) before anything
    Row("GET", "/v1/forms/{form}", expect(200, 200, 404, 403, 403, 403)),
    Row("PATCH", "/v1/forms/{form}", expect(200, 403, 404, 403, 403, 403), j({"title": "Sleep, v2"})),
    Row("GET", "/v1/forms/{form}/access", expect(200, 404, 404, 403, 403, 403)),
    Row("POST", "/v1/forms/{form}/assignments", expect(422, 422, 404, 403, 403, 403), j({})),
    Row("POST", "/v1/assignments/{assignment}/submission", expect(403, 403, 403, 403, 422, 404), j({"answers": {}})),
    Row("GET", "/v1/portal/forms", expect(403, 403, 403, 403, 200, 200)),
    Row("GET", "/v1/forms/{form}/submissions", expect(200, 200, 404, 403, 403, 403)),
    Row("GET", "/v1/forms/{form}/submissions.csv", expect(200, 200, 404, 403, 403, 403)),
    # audit: a patient's care team and the patient themself; anyone else (another patient too) gets 404
    Row("GET", "/v1/patients/{patient_id}/disclosures", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/patients/{patient_id}/disclosures.csv", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/patients/{patient_id}/disclosures/verify", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/portal/disclosures", expect(403, 403, 403, 403, 200, 200)),
    Row("GET", "/v1/portal/disclosures.csv", expect(403, 403, 403, 403, 200, 200)),
    # notify
    Row("GET", "/v1/notifications", expect(200, 200, 200, 200, 200, 200)),
    Row("POST", "/v1/notifications/{notification}/read", expect(404, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/notification-preferences", expect(200, 200, 200, 200, 200, 200)),
    Row("PUT", "/v1/notification-preferences", expect(200, 200, 200, 200, 200, 200), j({"email": True})),
    # audit: the accounting of disclosures, for the care team and for the patient (Jane may also read
    # her own through the care team's route; for anyone else the patient's accounting does not exist)
    Row("GET", "/v1/patients/{patient_id}/disclosures", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/patients/{patient_id}/disclosures.csv", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/patients/{patient_id}/disclosures/verify", expect(200, 404, 404, 404, 200, 404)),
    Row("GET", "/v1/portal/disclosures", expect(403, 403, 403, 403, 200, 200)),
    Row("GET", "/v1/portal/disclosures.csv", expect(403, 403, 403, 403, 200, 200)),
    # what removes something last, each on objects of its own
    Row("DELETE", "/v1/chart-shares/{grant2}", expect(204, 404, 404, 404, 404, 404)),
    # Bob and Jane see the document (shared with them) but may not delete it: 403; the others do not see it
    Row("DELETE", "/v1/documents/{document2}", expect(204, 403, 404, 404, 403, 404)),
    Row("DELETE", "/v1/patients/{patient_id}/care-team/{extra}", expect(204, 404, 404, 403, 403, 403)),
    Row("DELETE", "/v1/offices/{office}/members/{extra}", expect(204, 404, 404, 403, 404, 404)),
    # both sides may delete a connection: the owner's call (first of the two) removes it, then it is gone
    Row("DELETE", "/v1/connections/{connection}", expect(204, 404, 404, 404, 404, 404),
        order=("stranger", "staff", "patient", "other_patient", "anonymous", "owner", "recipient")),
]
# fmt: on


def api_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in document["paths"].items() for m in item if p.startswith("/v1/")}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    system = create_system()
    return combined_openapi({name: system.services[name].openapi() for name in SERVICES})


def test_every_route_of_the_api_has_a_row(document: dict[str, Any]) -> None:
    rows = {(r.method, r.path.replace("{bad}", "{x}")) for r in TABLE}
    import re

    def norm(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{x}", path)

    missing = {(m, p) for m, p in api_routes(document) if (m, norm(p)) not in {(rm, norm(rp)) for rm, rp in rows}}
    assert not missing, f"routes without a row in the authorization matrix: {sorted(missing)}"


async def test_each_caller_gets_the_status_of_its_cell() -> None:
    overrides = ServiceOverrides(identity=IdentitySettings(argon2_time_cost=1, argon2_memory_cost=8,
                                                           argon2_parallelism=1))
    async with LiveServer(create_system(overrides)) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        w = await build(http)
        wrong: list[str] = []
        for row in TABLE:
            order = row.order or sorted(ROLES, key=lambda r: 200 <= row.expect[r] < 300)  # successes last
            for role in order:
                r = await w.call(role, row.method, row.path, **row.kwargs(w))
                if r.status_code != row.expect[role]:
                    wrong.append(f"{row.method} {row.path} as {role}: {r.status_code} (table: {row.expect[role]})")
        assert not wrong, "\n".join(wrong)
