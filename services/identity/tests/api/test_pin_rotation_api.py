"""Rotating a Share PIN when the freshly drawn PIN is taken by the time it is written: the unique index
refuses the write (on FerretDB an InternalError the client turns into DuplicateKeyError), the rotation
draws again, and after three taken draws answers 503 with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clinishare_identity import service
from clinishare_identity.domain.pins import generate_pin, normalise_pin


def draws(monkeypatch: pytest.MonkeyPatch, pins: list[str]) -> list[str]:
    """``fresh_pin`` hands out ``pins`` in order (as if each were free when checked); returns what is left."""
    left = list(pins)

    async def fresh_pin(*, store: Any, attempts: int = 5) -> str:
        return left.pop(0)

    monkeypatch.setattr(service, "fresh_pin", fresh_pin)
    return left


@pytest.fixture
def new_pins() -> Iterator[list[str]]:
    yield [generate_pin() for _ in range(3)]


async def test_a_practitioner_pin_taken_meanwhile_is_drawn_again(api: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  assert_problem: Any, new_pins: list[str]) -> None:
    me, other = await api.register(), await api.register()
    mine, theirs = await api.pin(me), await api.pin(other)
    left = draws(monkeypatch, [normalise_pin(theirs), new_pins[0]])
    r = await api.client.post("/v1/me/share-pin/rotate", headers=me.auth)
    assert r.status_code == 200, r.text
    assert normalise_pin(r.json()["pin"]) == new_pins[0] and left == []
    assert await api.pin(me) == r.json()["pin"] and await api.pin(other) == theirs

    draws(monkeypatch, [normalise_pin(theirs)] * 3)
    assert_problem(await api.client.post("/v1/me/share-pin/rotate", headers=me.auth), 503)
    assert await api.pin(me) == r.json()["pin"] != mine and await api.pin(other) == theirs


async def test_an_office_pin_taken_meanwhile_is_drawn_again(api: Any, monkeypatch: pytest.MonkeyPatch,
                                                            assert_problem: Any, new_pins: list[str]) -> None:
    owner = await api.register()
    first, second = await api.office(owner, name="First"), await api.office(owner, name="Second")
    draws(monkeypatch, [normalise_pin(second["share_pin"]), new_pins[1]])
    r = await api.client.post(f"/v1/offices/{first['id']}/share-pin/rotate", headers=owner.auth)
    assert r.status_code == 200, r.text
    assert normalise_pin(r.json()["pin"]) == new_pins[1]

    draws(monkeypatch, [normalise_pin(second["share_pin"])] * 3)
    assert_problem(await api.client.post(f"/v1/offices/{first['id']}/share-pin/rotate", headers=owner.auth), 503)
    for office, pin in ((first, r.json()["pin"]), (second, second["share_pin"])):
        got = await api.client.get(f"/v1/offices/{office['id']}", headers=owner.auth)
        assert got.json()["share_pin"] == pin
