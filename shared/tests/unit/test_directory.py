"""``patient_in_care``: the projection answers first; identity is asked only when it says no."""

from __future__ import annotations

from typing import Any

import pytest

from clinishare_shared.directory import StaticDirectory, patient_in_care
from clinishare_shared.problems import Problem

pytestmark = pytest.mark.unit


class Projection:
    def __init__(self, care: dict[str, set[str]]) -> None:
        self.care = care

    async def in_care(self, patient_id: str, practitioner_id: str) -> bool:
        return practitioner_id in self.care.get(patient_id, set())


class CountingDirectory(StaticDirectory):
    def __init__(self, patients: dict[str, dict[str, Any]] | None = None, *, down: bool = False) -> None:
        super().__init__(patients)
        self.down = down
        self.asked: list[tuple[str, str]] = []

    async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None:
        self.asked.append((patient_id, authorization))
        if self.down:
            raise Problem(503, "the identity service is not reachable; try again")
        return await super().patient(patient_id, authorization=authorization)


async def test_the_projection_says_yes_and_identity_is_never_asked() -> None:
    directory = CountingDirectory(down=True)
    assert await patient_in_care(Projection({"pat": {"doc"}}), directory, patient_id="pat", practitioner_id="doc",
                                 authorization="Bearer t")
    assert directory.asked == []


async def test_identity_breaks_the_tie_with_the_callers_token() -> None:
    directory = CountingDirectory({"pat": {"id": "pat"}})
    assert await patient_in_care(Projection({}), directory, patient_id="pat", practitioner_id="doc",
                                 authorization="Bearer t")
    assert directory.asked == [("pat", "Bearer t")]


async def test_neither_knows_the_patient() -> None:
    directory = CountingDirectory({"other": {"id": "other"}})
    # the projection knows the patient, but in another practitioner's care: that is a no too
    assert not await patient_in_care(Projection({"pat": {"someone-else"}}), directory, patient_id="pat",
                                     practitioner_id="doc", authorization="Bearer t")
    assert directory.asked == [("pat", "Bearer t")]
    assert not await patient_in_care(Projection({}), None, patient_id="pat", practitioner_id="doc",
                                     authorization="Bearer t")


async def test_identity_down_refuses_the_request() -> None:
    with pytest.raises(Problem) as exc:
        await patient_in_care(Projection({}), CountingDirectory(down=True), patient_id="pat", practitioner_id="doc",
                              authorization="Bearer t")
    assert exc.value.status == 503


async def test_identity_unreachable_through_the_pooled_client_is_503() -> None:
    import httpx

    from clinishare_shared.directory import IdentityDirectory

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    directory = IdentityDirectory("http://identity.invalid", transport=httpx.MockTransport(refuse))
    try:
        with pytest.raises(Problem) as exc:
            await patient_in_care(Projection({}), directory, patient_id="pat", practitioner_id="doc",
                                  authorization="Bearer t")
        assert exc.value.status == 503
        # and a yes from the projection never touches it
        assert await patient_in_care(Projection({"pat": {"doc"}}), directory, patient_id="pat",
                                     practitioner_id="doc", authorization="Bearer t")
    finally:
        await directory.aclose()
