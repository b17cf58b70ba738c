"""Factories for the charts tests: a running charts service (real HTTP) fed identity facts the way
production feeds it, by identity events on the bus; tokens from the test signer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from clinishare_charts.app import create_app
from clinishare_charts.settings import ChartsSettings
from clinishare_shared.auth import TokenSigner
from clinishare_shared.bus.base import EventBus
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.directory import StaticDirectory
from clinishare_shared.events import Envelope
from clinishare_shared.testing import IdentityFacts, LiveServer, bearer, flush_outbox


class CareDirectory(StaticDirectory):
    """Identity's answer to "GET /v1/patients/{id}": the patient only for a member of its care team."""

    async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None:
        caller = jwt.decode(authorization.partition(" ")[2], options={"verify_signature": False})["sub"]
        if caller not in self.care.get(patient_id, set()):
            return None
        return self.patients.get(patient_id)


async def _handled_elsewhere(event: Envelope) -> None:
    return None  # on a real broker the test waits for the event itself


class Identity(IdentityFacts):
    """Identity facts for charts' tests (the common harness), keeping the care directory in step."""

    def __init__(self, bus: EventBus, directory: CareDirectory, drain: bool = True) -> None:
        super().__init__(bus, directory=directory, settle=None if drain else _handled_elsewhere)

    async def account(self, account_id: str, name: str | None = None, kind: str = "practitioner",
                      email: str | None = None) -> Envelope:
        """Registers the account (again, with a new name, stands for a rename: the projection keeps the
        latest name)."""
        return await super().account(account_id, name, kind, email)

    async def patient(self, name: str, *care_team: str) -> str:  # type: ignore[override]
        return await super().patient(*care_team, name=name)


@dataclass
class Charts:
    """A running charts service and a client, with helpers speaking its HTTP API."""

    http: httpx.AsyncClient
    signer: TokenSigner
    identity: Identity
    published: list[Envelope]
    app: Any = None
    bus: Any = None

    def auth(self, who: str, kind: str = "practitioner") -> dict[str, str]:
        return bearer(self.signer, who, kind)

    async def flush(self) -> list[Envelope]:
        """Everything staged so far, published and handled: what ``published`` holds after this is all."""
        await flush_outbox(self.app, self.bus)
        return self.published

    async def chart(self, author: str, patient_id: str, title: str = "Visit", body: str = "notes") -> dict[str, Any]:
        r = await self.http.post("/v1/charts", json={"patient_id": patient_id, "title": title, "body": body},
                                 headers=self.auth(author))
        assert r.status_code == 201, r.text
        return r.json()

    async def share(self, owner: str, rule: str, *, expect: int = 201, **body: Any) -> dict[str, Any]:
        payload = {"rule": rule, "practitioner_ids": [], "office_ids": [], "patient_consent": True, **body}
        r = await self.http.post("/v1/chart-shares", json=payload, headers=self.auth(owner))
        assert r.status_code == expect, r.text
        return r.json()

    async def shared_ids(self, who: str, kind: str = "practitioner", **params: Any) -> list[str]:
        r = await self.http.get("/v1/charts/shared-with-me", params=params, headers=self.auth(who, kind))
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    async def walk(self, path: str, who: str, *, limit: int) -> list[str]:
        """Every id of a listing, page by page (``limit`` a page), following ``next_cursor`` to the end."""
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await self.http.get(path, params=params, headers=self.auth(who))).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    async def status(self, who: str, chart_id: str, kind: str = "practitioner") -> int:
        return (await self.http.get(f"/v1/charts/{chart_id}", headers=self.auth(who, kind))).status_code


@pytest.fixture
def directory() -> CareDirectory:
    return CareDirectory()


@pytest.fixture
async def charts(mongo_client: Any, db_name: str, unique: str, signer: TokenSigner, key_provider: Any,
                 directory: CareDirectory) -> AsyncIterator[Charts]:
    """The service on the in-memory bus; a collector queue records every charts.* event it publishes."""
    bus = InMemoryBus()
    published: list[Envelope] = []

    async def collect(event: Envelope) -> None:
        published.append(event)

    await bus.subscribe(f"collector.{unique}", ["charts.#"], collect)
    settings = ChartsSettings(mongodb_database=db_name, queue_name=f"charts.{unique}", outbox_poll_interval=0.05,
                              expiry_sweep_seconds=0.1)
    app = create_app(settings, bus=bus, mongo_client=mongo_client, keys=key_provider, directory=directory)
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield Charts(http=http, signer=signer, identity=Identity(bus, directory), published=published, app=app,
                     bus=bus)
    await bus.close()


@pytest.fixture
def identity_on(directory: CareDirectory) -> Any:
    """Identity facts published on a given bus (a real broker: callers wait for them to be handled)."""
    return lambda bus: Identity(bus, directory, drain=False)
