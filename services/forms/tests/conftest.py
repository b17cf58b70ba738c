"""Fixtures for the forms tests: the app wired to test doubles, a live HTTP server, and the multi-clinic
study world (identity facts arrive as identity events on the bus, published by the common harness
``IdentityFacts``, never from the identity service)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clinishare_forms.app import create_app
from clinishare_forms.settings import FormsSettings
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.directory import StaticDirectory
from clinishare_shared.events import Envelope
from clinishare_shared.testing import IdentityFacts, LiveServer, bearer, flush_outbox

A, B, D, E = "prac-a", "prac-b", "prac-d", "prac-e"  # author, PIN-connected, office colleague, outsider
OFFICE = "office-o"
PATIENT_OF = {A: "pat-a", B: "pat-b", D: "pat-d", E: "pat-e"}

SAMPLE_FIELDS = [
    {"type": "text", "key": "name_of_study", "label": "Study", "required": True},
    {"type": "number", "key": "weight", "label": "Weight (kg)", "min": 0, "max": 500},
    {"type": "choice", "key": "smoker", "label": "Smoker?", "options": ["yes", "no"], "required": True},
    {"type": "scale", "key": "pain", "label": "Pain", "min": 0, "max": 10},
]
GOOD_ANSWERS = {"name_of_study": "baseline", "weight": 72.5, "smoker": "no", "pain": 3}


async def study_world(facts: IdentityFacts) -> str:
    """A member of office O with D; A connected to B by PIN; each practitioner has one patient. Returns the
    A→B connection's id."""
    await facts.office(A, {D: "practitioner"}, name="Study office", office_id=OFFICE)
    connection = await facts.connect(A, B)
    for practitioner, patient in PATIENT_OF.items():
        await facts.patient(practitioner, patient_id=patient)
    return connection


def sharing(*, allow_others: bool = True, author_all: bool = False, others_all: bool = False,
            practitioner_ids: tuple[str, ...] = (B,), office_ids: tuple[str, ...] = (OFFICE,)) -> dict[str, Any]:
    return {"allow_others": allow_others, "practitioner_ids": list(practitioner_ids), "office_ids": list(office_ids),
            "author_sees_all_submissions": author_all, "others_see_all_submissions": others_all}


class Clinic:
    """An HTTP client for the running forms service, speaking as any practitioner or patient."""

    def __init__(self, client: httpx.AsyncClient, signer: Any, bus: Any, published: list[Envelope],
                 directory: StaticDirectory, app: Any = None) -> None:
        self.app = app
        self.http = client
        self.directory = directory  # identity's own answers, for when the projection lags
        self.signer = signer
        self.bus = bus
        self.published = published
        # identity's facts; the directory is kept apart, so identity knows only what a test tells it
        self.facts = IdentityFacts(bus)
        self.connection_ab = ""

    async def flush(self) -> list[Envelope]:
        """Everything staged so far, published and handled: what ``published`` holds after this is all."""
        await flush_outbox(self.app, self.bus)
        return self.published

    def as_(self, who: str, kind: str = "practitioner") -> dict[str, str]:
        return bearer(self.signer, who, kind)

    async def create_form(self, *, who: str = A, title: str = "Study intake", fields: list | None = None,
                          **share: Any) -> dict[str, Any]:
        body = {"title": title, "fields": fields or SAMPLE_FIELDS, "sharing": sharing(**share)}
        resp = await self.http.post("/v1/forms", json=body, headers=self.as_(who))
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def assign(self, form_id: str, who: str, patient: str | None = None) -> httpx.Response:
        return await self.http.post(f"/v1/forms/{form_id}/assignments", json={"patient_id": patient or PATIENT_OF[who]},
                                    headers=self.as_(who))

    async def submit(self, assignment_id: str, patient: str, answers: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"/v1/assignments/{assignment_id}/submission",
                                    json={"answers": GOOD_ANSWERS if answers is None else answers},
                                    headers=self.as_(patient, "patient"))

    async def assign_and_submit(self, form_id: str, who: str) -> dict[str, Any]:
        resp = await self.assign(form_id, who)
        assert resp.status_code == 201, resp.text
        sub = await self.submit(resp.json()["id"], PATIENT_OF[who])
        assert sub.status_code == 201, sub.text
        return sub.json()

    async def visible_patients(self, form_id: str, who: str) -> set[str] | None:
        """Patients whose submissions ``who`` sees in the list; None for 404. Checks the CSV agrees."""
        resp = await self.http.get(f"/v1/forms/{form_id}/submissions", headers=self.as_(who))
        exported = await self.http.get(f"/v1/forms/{form_id}/submissions.csv", headers=self.as_(who))
        if resp.status_code == 404:
            assert exported.status_code == 404
            return None
        assert resp.status_code == 200 and exported.status_code == 200, (resp.text, exported.text)
        listed = {s["patient_id"] for s in resp.json()["items"]}
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {r["patient_id"] for r in rows} == listed, "CSV and list disagree"
        return listed


@pytest.fixture
def forms_settings(db_name: str) -> FormsSettings:
    return FormsSettings(mongodb_database=db_name, amqp_url=None, outbox_poll_interval=0.05)


@pytest.fixture
async def clinic(forms_settings: FormsSettings, mongo_client: Any, key_provider: Any,
                 signer: Any) -> AsyncIterator[Clinic]:
    bus = InMemoryBus()
    published: list[Envelope] = []

    async def capture(event: Envelope) -> None:
        published.append(event)

    await bus.subscribe("probe", ["forms.#"], capture)
    directory = StaticDirectory()
    app = create_app(forms_settings, bus=bus, mongo_client=mongo_client, keys=key_provider, directory=directory)
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        world = Clinic(client, signer, bus, published, directory, app)
        world.connection_ab = await study_world(world.facts)
        yield world
    await bus.close()
