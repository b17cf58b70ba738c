"""Fixtures for identity's tests: cheap argon2 settings, an in-memory bus with an observer queue, a live
identity server, and an ``api`` helper that registers users, logs them in and builds offices."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.events import Envelope
from clinishare_shared.testing import LiveServer, wait_for, yielding
from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(db_name: str, unique: str) -> IdentitySettings:
    return IdentitySettings(mongodb_database=db_name, amqp_url=None, event_exchange=f"test.{unique}",
                            queue_name=f"test.identity.{unique}", outbox_poll_interval=0.5,
                            argon2_time_cost=1, argon2_memory_cost=8, argon2_parallelism=1, log_json=False)


@pytest.fixture
async def bus() -> Any:
    bus = InMemoryBus()
    yield bus
    await bus.close()


@dataclass
class Observed:
    """Every identity event the bus delivered to a test queue bound to ``identity.#``."""

    events: list[Envelope] = field(default_factory=list)

    async def handle(self, event: Envelope) -> None:
        self.events.append(event)

    def of(self, event_type: str) -> list[Envelope]:
        return [e for e in self.events if e.type == event_type]

    async def wait(self, event_type: str, count: int = 1) -> list[Envelope]:
        await wait_for(lambda: len(self.of(event_type)) >= count, message=f"{count} x {event_type}")
        return self.of(event_type)


@pytest.fixture
async def observed(bus: InMemoryBus) -> Observed:
    obs = Observed()
    await bus.subscribe("test.observer", ["identity.#"], obs.handle)
    return obs


@dataclass
class User:
    id: str
    email: str
    name: str
    kind: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """Thin helpers over the HTTP API; every call goes through the live server."""

    _seq = itertools.count()

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    async def register(self, kind: str = "practitioner", name: str | None = None) -> User:
        n = next(self._seq)
        name = name or f"{kind.title()} {n}"
        email = f"{kind}{n}@clinic.example.org"
        r = await self.client.post("/v1/accounts", json={"email": email, "password": PASSWORD, "name": name,
                                                         "kind": kind})
        assert r.status_code == 201, r.text
        return User(id=r.json()["id"], email=email, name=name, kind=kind, token=await self.login(email))

    async def login(self, email: str, password: str = PASSWORD) -> str:
        r = await self.client.post("/v1/auth/token", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    async def pin(self, user: User) -> str:
        r = await self.client.get("/v1/me/share-pin", headers=user.auth)
        assert r.status_code == 200, r.text
        return r.json()["pin"]

    async def office(self, owner: User, *members: tuple[User, str], name: str = "North Clinic") -> dict[str, Any]:
        r = await self.client.post("/v1/offices", json={"name": name}, headers=owner.auth)
        assert r.status_code == 201, r.text
        office = r.json()
        for user, role in members:
            r = await self.client.post(f"/v1/offices/{office['id']}/members", json={"email": user.email, "role": role},
                                       headers=owner.auth)
            assert r.status_code == 201, r.text
            office = r.json()
        return office

    async def connect(self, user: User, pin: str) -> dict[str, Any]:
        r = await self.client.post("/v1/connections", json={"pin": pin}, headers=user.auth)
        assert r.status_code == 201, r.text
        return r.json()

    async def patient(self, practitioner: User, name: str = "Ada Lovelace", **extra: Any) -> dict[str, Any]:
        n = next(self._seq)
        body = {"name": name, "email": f"patient{n}@mail.example.org", **extra}
        r = await self.client.post("/v1/patients", json=body, headers=practitioner.auth)
        assert r.status_code == 201, r.text
        return r.json()

    async def activate(self, practitioner: User, patient: dict[str, Any], password: str = "patient pass 42") -> User:
        """Invite the patient and redeem the invite: the patient's portal account, logged in."""
        r = await self.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=practitioner.auth)
        assert r.status_code == 201, r.text
        r = await self.client.post("/v1/portal/activate", json={"invite_token": r.json()["invite_token"],
                                                                 "password": password})
        assert r.status_code == 201, r.text
        return User(id=r.json()["id"], email=patient["email"], name=patient["name"], kind="patient",
                    token=await self.login(patient["email"], password))

    async def sharing_list(self, user: User) -> dict[str, dict[str, str]]:
        """{"practitioners": {id: via}, "offices": {id: via}}"""
        r = await self.client.get("/v1/sharing-list", headers=user.auth)
        assert r.status_code == 200, r.text
        return {k: {e["id"]: e["via"] for e in v} for k, v in r.json().items()}


@pytest.fixture
async def api(settings: IdentitySettings, bus: InMemoryBus, observed: Observed, mongo_client: Any) -> Any:
    # ``observed`` binds a queue first, so the relay's events are routable and tests can inspect them;
    # every database call yields to the event loop, so parallel requests interleave on any engine
    app = create_app(settings, bus=bus, mongo_client=yielding(mongo_client))
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield Api(client, app)


@pytest.fixture
def assert_problem() -> Any:
    def check(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == status
        return body

    return check
