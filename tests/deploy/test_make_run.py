"""`make run`'s process (`python -m clinishare_allinone`) on its embedded default: FerretDB on a data
directory, started and stopped with it. Data and identity's signing key survive a restart, so a token
issued before the restart still works after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clinishare_shared import ferretdb
from clinishare_shared.testing import wait_for

PASSWORD = "tidal meadow 7734"


class AllInOne:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = ferretdb.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "AMQP_URL")}
        env.update(DATA_DIR=str(data_dir), PORT=str(self.port), HOST="127.0.0.1", LOG_JSON="true")
        self.proc = subprocess.Popen([sys.executable, "-m", "clinishare_allinone"], env=env,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        async def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"make run's process exited:\n{self.log.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(up, timeout=60, interval=0.1, message="the all-in-one process is ready")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def binary() -> Iterator[Path]:
    found = ferretdb.find_binary()
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("FerretDB is missing under CI; `make test` builds it (make ferretdb)")
        pytest.skip("no FerretDB binary here (no Go to build it): make run falls back to the in-process engine")
    yield found


async def test_make_run_keeps_data_and_signing_key_across_a_restart(tmp_path: Path, binary: Path) -> None:
    data, log = tmp_path / "var", tmp_path / "allinone.log"
    first = AllInOne(data, log)
    try:
        await first.ready()
        async with httpx.AsyncClient(base_url=first.url) as client:
            r = await client.post("/v1/accounts", json={"email": "ada@harbour-clinic.org", "password": PASSWORD,
                                                         "name": "Dr Ada", "kind": "practitioner"})
            assert r.status_code == 201, r.text
            r = await client.post("/v1/auth/token", json={"email": "ada@harbour-clinic.org", "password": PASSWORD})
            token = r.json()["access_token"]
            pin = (await client.get("/v1/me/share-pin", headers={"Authorization": f"Bearer {token}"})).json()["pin"]
    finally:
        assert first.stop() == 0
    # FerretDB went down with it, and its data stayed in the data directory
    assert any((data / "ferretdb").glob("*.sqlite")), list((data / "ferretdb").iterdir())
    lines = log.read_text()
    assert "FerretDB v1.24.2" in lines and "in-process" not in lines

    second = AllInOne(data, log)
    try:
        await second.ready()
        async with httpx.AsyncClient(base_url=second.url, headers={"Authorization": f"Bearer {token}"}) as client:
            me = await client.get("/v1/me")  # the token from before the restart: same signing key
            assert me.status_code == 200, me.text
            assert me.json()["email"] == "ada@harbour-clinic.org"
            assert (await client.get("/v1/me/share-pin")).json()["pin"] == pin
        async with httpx.AsyncClient(base_url=second.url) as client:
            again = await client.post("/v1/auth/token", json={"email": "ada@harbour-clinic.org", "password": PASSWORD})
            assert again.status_code == 200
    finally:
        assert second.stop() == 0


async def test_make_run_falls_back_with_a_warning_without_ferretdb(tmp_path: Path) -> None:
    log = tmp_path / "allinone.log"
    env_bin = os.environ.get("FERRETDB_BIN")
    os.environ["FERRETDB_BIN"] = str(tmp_path / "no-such-ferretdb")
    try:
        proc = AllInOne(tmp_path / "var", log)
    finally:
        if env_bin is None:
            os.environ.pop("FERRETDB_BIN")
        else:
            os.environ["FERRETDB_BIN"] = env_bin
    try:
        await proc.ready()
    finally:
        proc.stop()
    text = log.read_text()
    assert "database_engine_fallback" in text and "LOST when this process stops" in text
