"""Issue 11, "projections can catch up": a charts, documents or forms process started after identity
published, on a fresh database and a bus that never carried identity's events, rebuilds its identity
projection from identity's paged snapshot (``/v1/internal/identity-snapshot``) and then authorises a share
to a practitioner it never saw an event for; without the snapshot it cannot (the negative control), and a
practitioner not on the sharer's list stays refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clinishare_charts.app import create_app as charts_app
from clinishare_charts.settings import ChartsSettings
from clinishare_documents.app import create_app as documents_app
from clinishare_documents.settings import DocumentsSettings
from clinishare_forms.app import create_app as forms_app
from clinishare_forms.settings import FormsSettings
from clinishare_identity.app import create_app as identity_app
from clinishare_identity.settings import IdentitySettings
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.directory import IdentityDirectory
from clinishare_shared.testing import LiveServer, wait_for

KEY = "catch-up-test-key-0123456789"
PASSWORD = "correct horse battery"


@pytest.fixture
async def identity(mongo_client: Any, signer: Any, unique: str) -> AsyncIterator[dict[str, Any]]:
    """A live identity (its own bus: nobody else hears its events) holding Alice, Bob (connected to
    Alice by his PIN), Carol (not connected) and Alice's patient."""
    bus = InMemoryBus()
    settings = IdentitySettings(mongodb_database=f"catchup_{unique}_identity", internal_api_key=KEY,
                                argon2_time_cost=1, argon2_memory_cost=8, argon2_parallelism=1, log_json=False)
    app = identity_app(settings, bus=bus, mongo_client=mongo_client)
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        people: dict[str, Any] = {"url": server.url}
        for who in ("alice", "bob", "carol"):
            email = f"{who}.{unique}@harbour-clinic.org"
            r = await http.post("/v1/accounts", json={"email": email, "password": PASSWORD, "name": f"Dr {who}",
                                                      "kind": "practitioner"})
            assert r.status_code == 201, r.text
            token = (await http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})).json()
            people[who] = {"id": r.json()["id"], "auth": {"Authorization": f"Bearer {token['access_token']}"}}
        pin = (await http.get("/v1/me/share-pin", headers=people["bob"]["auth"])).json()["pin"]
        assert (await http.post("/v1/connections", json={"pin": pin}, headers=people["alice"]["auth"])).status_code == 201
        r = await http.post("/v1/patients", json={"name": "Jane Roe", "email": f"jane.{unique}@mail.org"},
                            headers=people["alice"]["auth"])
        people["patient_id"] = r.json()["id"]
        people["jwks"] = f"{server.url}/.well-known/jwks.json"
        yield people
    await bus.close()


async def _service(make: Any, settings: Any, identity: dict[str, Any], mongo_client: Any, *,
                   key: str | None) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    directory = IdentityDirectory(identity["url"], internal_key=key)
    bus = InMemoryBus()  # a fresh bus: not one identity event reaches this service
    app = make(settings, bus=bus, mongo_client=mongo_client, directory=directory)
    try:
        async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            yield http, app
    finally:
        await directory.aclose()
        await bus.close()


async def _caught_up(app: Any, identity: dict[str, Any]) -> None:
    directory = IdentityDirectory(identity["url"], internal_key=KEY)
    try:
        theirs = await directory.high_water()
    finally:
        await directory.aclose()

    async def done() -> bool:
        return await app.state.projection.high_water() >= theirs

    await wait_for(done, timeout=30, interval=0.1, message="the projection caught up from identity's snapshot")


def _settings(cls: Any, unique: str, identity: dict[str, Any], name: str) -> Any:
    return cls(mongodb_database=f"catchup_{unique}_{name}", jwks_url=identity["jwks"],
               identity_url=identity["url"], log_json=False)


@pytest.mark.parametrize("key", [KEY, None], ids=["snapshot", "no-snapshot"])
async def test_charts_started_after_identity_published_authorises_a_share(identity, mongo_client, unique, key) -> None:
    a, b, c = identity["alice"], identity["bob"], identity["carol"]
    settings = _settings(ChartsSettings, unique, identity, f"charts_{bool(key)}")
    async for http, app in _service(charts_app, settings, identity, mongo_client, key=key):
        if key is None:  # the control: nothing to catch up from
            assert await app.state.projection.high_water() == 0
        else:
            await _caught_up(app, identity)
        chart = await http.post("/v1/charts", json={"patient_id": identity["patient_id"], "title": "t", "body": "b"},
                                headers=a["auth"])
        assert chart.status_code == 201, chart.text
        chart_id = chart.json()["id"]
        r = await http.post("/v1/chart-shares", json={"rule": "chart", "chart_id": chart_id, "practitioner_ids":
                                                      [c["id"]], "office_ids": [], "patient_consent": True},
                            headers=a["auth"])
        assert r.status_code == 422, r.text  # Carol is on nobody's list
        r = await http.post("/v1/chart-shares", json={"rule": "chart", "chart_id": chart_id, "practitioner_ids":
                                                      [b["id"]], "office_ids": [], "patient_consent": True},
                            headers=a["auth"])
        assert r.status_code == 201, r.text
        # identity's own answer lets the share through either way; the read is the projection's
        assert (await http.get(f"/v1/charts/{chart_id}", headers=b["auth"])).status_code == (200 if key else 404)
        assert (await http.get(f"/v1/charts/{chart_id}", headers=c["auth"])).status_code == 404


async def test_documents_started_after_identity_published_authorises_a_share(identity, mongo_client, unique) -> None:
    a, b, c = identity["alice"], identity["bob"], identity["carol"]
    settings = _settings(DocumentsSettings, unique, identity, "documents")
    async for http, app in _service(documents_app, settings, identity, mongo_client, key=KEY):
        await _caught_up(app, identity)
        doc = await http.post("/v1/documents", headers=a["auth"], files={"file": ("n.txt", b"hello", "text/plain")})
        assert doc.status_code == 201, doc.text
        doc_id = doc.json()["id"]
        r = await http.post("/v1/documents/labels", headers=a["auth"],
                            json={"document_ids": [doc_id], "add": {"practitioner_ids": [c["id"]]}, "remove": {}})
        assert r.status_code == 422, r.text
        r = await http.post("/v1/documents/labels", headers=a["auth"],
                            json={"document_ids": [doc_id], "add": {"practitioner_ids": [b["id"]]}, "remove": {}})
        assert r.status_code == 200, r.text
        assert (await http.get(f"/v1/documents/{doc_id}/content", headers=b["auth"])).status_code == 200
        assert (await http.get(f"/v1/documents/{doc_id}/content", headers=c["auth"])).status_code == 404


async def test_forms_started_after_identity_published_authorises_a_share(identity, mongo_client, unique) -> None:
    a, b, c = identity["alice"], identity["bob"], identity["carol"]
    settings = _settings(FormsSettings, unique, identity, "forms")
    fields = [{"type": "text", "key": "q", "label": "Q"}]
    async for http, app in _service(forms_app, settings, identity, mongo_client, key=KEY):
        await _caught_up(app, identity)
        r = await http.post("/v1/forms", headers=a["auth"], json={"title": "Intake", "fields": fields, "sharing": {
            "allow_others": True, "practitioner_ids": [c["id"]]}})
        assert r.status_code == 422, r.text
        r = await http.post("/v1/forms", headers=a["auth"], json={"title": "Intake", "fields": fields, "sharing": {
            "allow_others": True, "practitioner_ids": [b["id"]]}})
        assert r.status_code == 201, r.text
        form_id = r.json()["id"]
        assert (await http.get(f"/v1/forms/{form_id}", headers=b["auth"])).status_code == 200
        assert (await http.get(f"/v1/forms/{form_id}", headers=c["auth"])).status_code == 404
