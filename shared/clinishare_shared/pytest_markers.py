"""pytest plugin: every test's marker says what it really touches (loaded with
``-p clinishare_shared.pytest_markers``), whatever folder it sits in.

- ``e2e``: everything under ``tests/e2e`` (services as processes, over HTTP and the broker);
- ``system``: starts local servers or processes but uses neither MongoDB nor the broker: everything
  under ``tests/deploy``, and tests that declare it (``@pytest.mark.system``);

A test may declare a heavier kind than its fixtures show (``@pytest.mark.e2e`` on a benchmark that runs
the whole system), never a lighter one.
- ``integration``: uses the real RabbitMQ (the ``amqp_url`` fixture);
- ``database``: uses MongoDB (the ``mongo_client`` fixture) but not the broker;
- ``unit``: none of these, and it is held to that: a unit test that opens a network connection or
  listens on a port fails (``make unit`` runs only these).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

MARKERS = {
    "unit": "no I/O: no database, broker, server or network (enforced)",
    "database": "uses MongoDB, not the broker",
    "integration": "uses the real RabbitMQ (never skipped)",
    "e2e": "tests/e2e: the services as separate processes",
    "system": "local servers or processes, no MongoDB or broker (tests/deploy, or declared)",
}
WEIGHT = {"unit": 0, "system": 1, "database": 2, "integration": 3, "e2e": 4}
BROKER_FIXTURES = frozenset({"amqp_url"})
DATABASE_FIXTURES = frozenset({"mongo_client", "mongodb_url"})


def kind_of(path: Path, fixtures: set[str]) -> str:
    top = path.parts[path.parts.index("tests") + 1] if "tests" in path.parts else ""
    if top == "e2e":
        return "e2e"
    if top == "deploy":
        return "system"
    if fixtures & BROKER_FIXTURES:
        return "integration"
    if fixtures & DATABASE_FIXTURES:
        return "database"
    return "unit"


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = kind_of(Path(str(item.path)), set(getattr(item, "fixturenames", ())))
        declared = [m for m in MARKERS if item.get_closest_marker(m) is not None]
        if len(declared) > 1 or (declared and WEIGHT[declared[0]] < WEIGHT[kind]):
            raise pytest.UsageError(f"{item.nodeid} is marked {declared} but it is {kind!r}: markers follow "
                                    "what a test uses (see clinishare_shared.pytest_markers)")
        if declared:
            # more I/O than its fixtures show (a local server, the whole system as processes): it says so
            kind = declared[0]
        item.add_marker(getattr(pytest.mark, kind))


class _NoNetwork:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{self.nodeid} is a unit test and must do no I/O (it tried to use the network); "
                             "use a database or broker fixture, which marks it as what it is")


@pytest.fixture(autouse=True)
def _unit_tests_do_no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is None:
        return
    guard = _NoNetwork(request.node.nodeid)
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, guard)
    monkeypatch.setattr(socket, "create_connection", guard)
