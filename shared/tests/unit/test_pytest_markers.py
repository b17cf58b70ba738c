import socket
from pathlib import Path

import pytest

from clinishare_shared.pytest_markers import kind_of


def test_the_kind_follows_what_the_test_uses_not_its_folder() -> None:
    unit_folder = Path("/repo/services/charts/tests/unit/test_x.py")
    assert kind_of(unit_folder, {"hypothesis"}) == "unit"
    assert kind_of(unit_folder, {"db", "mongo_client"}) == "database"
    assert kind_of(unit_folder, {"mongo_client", "amqp_url"}) == "integration"
    assert kind_of(Path("/repo/tests/e2e/test_stories.py"), set()) == "e2e"
    assert kind_of(Path("/repo/tests/deploy/test_readme.py"), set()) == "system"


def test_a_unit_test_cannot_open_a_connection_or_listen() -> None:
    with pytest.raises(AssertionError, match="must do no I/O"):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket() as s, pytest.raises(AssertionError, match="must do no I/O"):
        s.bind(("127.0.0.1", 0))
