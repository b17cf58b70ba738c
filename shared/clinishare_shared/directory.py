"""Asking identity directly, through its HTTP API with the caller's own token.

Events never carry PHI, so a service that needs a patient's name (charts: search by patient name) asks
identity once, when it writes, and keeps the name beside the data it already holds about that patient.
It is also the tie-breaker for validation: the local projection can lag identity by an event, so an id the
projection refuses is checked against identity's own answer before the request is refused. Reads never
depend on identity (they use the projection), so shared data stays readable while identity is down.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
import structlog

from clinishare_shared.domain.sharing import SharingList
from clinishare_shared.http import pooled_client
from clinishare_shared.ids import is_id
from clinishare_shared.observability import outgoing_headers
from clinishare_shared.problems import Problem

log = structlog.get_logger("clinishare.directory")


class Directory(Protocol):
    async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None: ...

    async def sharing_list(self, *, authorization: str) -> SharingList | None: ...


class IdentityDirectory:
    """Identity over HTTP through one pooled client (keep-alive, at most ``max_connections`` at once),
    made on first use and closed with ``aclose``."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 5.0, max_connections: int = 20, internal_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.internal_key = internal_key  # INTERNAL_API_KEY: identity's snapshot answers only with it
        self.transport = transport
        self.timeout = timeout
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = pooled_client(base_url=self.base_url, transport=self.transport, timeout=self.timeout,
                                         max_connections=self.max_connections,
                                         max_keepalive=self.max_connections)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _get(self, path: str, authorization: str) -> httpx.Response | None:
        try:
            # the request id, correlation id and trace travel on service-to-service calls
            return await self.client.get(path, headers={"Authorization": authorization, **outgoing_headers()})
        except httpx.HTTPError as exc:
            log.warning("identity_unreachable", path=path.split("?")[0], error=type(exc).__name__)
            return None

    async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None:
        """The patient as identity shows it to the caller (so only if in the caller's care), else None.
        Raises 503 when identity cannot answer."""
        if not is_id(patient_id):  # never let a value change the path it is put into
            return None
        resp = await self._get(f"/v1/patients/{patient_id}", authorization)
        if resp is None or resp.status_code >= 500:
            raise Problem(503, "the identity service is not reachable; try again")
        if resp.status_code != 200:
            return None
        return resp.json()

    async def sharing_list(self, *, authorization: str) -> SharingList | None:
        """The caller's sharing list from identity, or None if identity cannot answer."""
        resp = await self._get("/v1/sharing-list", authorization)
        if resp is None or resp.status_code != 200:
            return None
        body = resp.json()
        return SharingList(practitioners={p["id"]: p["via"] for p in body.get("practitioners", [])},
                           offices={o["id"]: o["via"] for o in body.get("offices", [])})

    # ---- identity's snapshot (clinishare_shared.catchup), with the internal key instead of a token ----

    async def _internal(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.internal_key:
            raise RuntimeError("no INTERNAL_API_KEY: identity's snapshot cannot be asked")
        resp = await self.client.get(path, params=params,
                                     headers={"X-Clinishare-Internal-Key": self.internal_key, **outgoing_headers()})
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    async def high_water(self) -> int:
        """How many projected events identity's state stands for. Raises when identity cannot answer."""
        return int((await self._internal("/v1/internal/identity-snapshot/high-water"))["high_water"])

    async def snapshot_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of identity's facts (``{type, data}``, each as its event states it) and the next cursor."""
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = await self._internal("/v1/internal/identity-snapshot", params)
        return body["items"], body["next_cursor"]


class StaticDirectory:
    """A directory from fixed data, for tests that run one service alone."""

    def __init__(self, patients: dict[str, dict[str, Any]] | None = None,
                 care: dict[str, set[str]] | None = None) -> None:
        self.patients = patients or {}
        self.care = care or {}  # patient id -> practitioner ids who may see it

    async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None:
        return self.patients.get(patient_id)

    async def sharing_list(self, *, authorization: str) -> SharingList | None:
        return None


async def patient_in_care(projection: Any, directory: Directory | None, *, patient_id: str, practitioner_id: str,
                          authorization: str) -> bool:
    """Is the patient in the practitioner's care? "Projection first, identity breaks the tie": the local
    projection answers; only if it says no is identity asked, with the caller's token, through the one
    pooled client the lifespan owns (``Infra.directory``), since the projection may be an event behind.
    No when neither knows the patient; identity's 503 passes through when it cannot answer (the request is
    refused rather than decided on a guess)."""
    if await projection.in_care(patient_id, practitioner_id):
        return True
    if directory is None:
        return False
    return await directory.patient(patient_id, authorization=authorization) is not None


async def refused_recipients(projection: Any, directory: Directory | None, *, account_id: str, authorization: str,
                             practitioner_ids: list[str], office_ids: list[str]) -> list[str]:
    """Recipient ids not on the caller's sharing list. The projection answers first; ids it refuses are
    checked with identity (the projection may be one event behind), and refused only if identity agrees
    or cannot be asked."""
    local = await projection.sharing_list(account_id)
    bad = local.refused(practitioner_ids=practitioner_ids, office_ids=office_ids)
    if not bad or directory is None:
        return bad
    fresh = await directory.sharing_list(authorization=authorization)
    if fresh is None:
        return bad
    return fresh.refused(practitioner_ids=[b for b in bad if b in practitioner_ids],
                         office_ids=[b for b in bad if b in office_ids])
