"""A running audit service (real HTTP) on the in-memory bus, fed events the way production feeds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from clinishare_audit.app import create_app
from clinishare_audit.settings import AuditSettings
from clinishare_shared.auth import TokenSigner
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.events import AccountRegistered, Envelope, EventData, PatientRegistered, make_event
from clinishare_shared.testing import LiveServer, bearer, wait_for


@dataclass
class Audit:
    http: httpx.AsyncClient
    signer: TokenSigner
    bus: InMemoryBus
    db: Any

    def auth(self, who: str, kind: str = "practitioner") -> dict[str, str]:
        return bearer(self.signer, who, kind)

    async def emit(self, data: EventData, *, source: str = "test", event: Envelope | None = None) -> Envelope:
        event = event or make_event(data, source=source, subject="s")
        await self.bus.publish(event)
        await self.bus.drain()
        await wait_for(lambda: self.db["processed_events"].find_one({"_id": event.id}), message=event.type)
        return event

    async def account(self, account_id: str, name: str) -> None:
        await self.emit(AccountRegistered(account_id=account_id, kind="practitioner", name=name))

    async def patient(self, patient_id: str, *care_team: str, version: int = 1) -> None:
        await self.emit(PatientRegistered(patient_id=patient_id, registered_by=care_team[0], version=version,
                                          care_team=list(care_team)))

    async def disclosures(self, patient_id: str, who: str, kind: str = "practitioner", **params: Any) -> httpx.Response:
        return await self.http.get(f"/v1/patients/{patient_id}/disclosures", params=params,
                                   headers=self.auth(who, kind))


@pytest.fixture
async def audit(mongo_client: Any, db_name: str, unique: str, signer: TokenSigner,
                key_provider: Any) -> AsyncIterator[Audit]:
    bus = InMemoryBus()
    settings = AuditSettings(mongodb_database=db_name, queue_name=f"audit.{unique}")
    app = create_app(settings, bus=bus, mongo_client=mongo_client, keys=key_provider)
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield Audit(http=http, signer=signer, bus=bus, db=mongo_client[db_name])
    await bus.close()
