"""Schemathesis (property-based API testing, from PyPI) against the all-in-one system's combined OpenAPI
document with a real practitioner's token: no 5xx, every response's status, content type and body as the
document declares. Bounded: a few examples per operation and a time budget, so it stays under 2 minutes."""

import asyncio
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from clinishare_allinone.system import ServiceOverrides, create_system
from clinishare_identity.settings import IdentitySettings
from clinishare_shared.testing import LiveServer

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def test_the_api_keeps_its_openapi_contract_under_generated_requests(tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    assert st.exists(), "schemathesis is in requirements/test.in"
    overrides = ServiceOverrides(identity=IdentitySettings(argon2_time_cost=1, argon2_memory_cost=8,
                                                           argon2_parallelism=1))
    async with LiveServer(create_system(overrides)) as server, httpx.AsyncClient(base_url=server.url) as http:
        account = {"email": "fuzz@contract-clinic.org", "password": "correct horse 42", "name": "Dr Fuzz",
                   "kind": "practitioner"}
        assert (await http.post("/v1/accounts", json=account)).status_code == 201
        token = (await http.post("/v1/auth/token", json={"email": account["email"],
                                                         "password": account["password"]})).json()["access_token"]
        proc = await asyncio.create_subprocess_exec(
            str(st), "run", f"{server.url}/openapi.json", "--checks", CHECKS, "--header",
            f"Authorization: Bearer {token}", "--max-examples", "5", "--phases", "examples,fuzzing",
            "--max-time", "60", "--seed", "14", "--workers", "1", "--no-shrink",
            "--exclude-path-regex", "^/\\.well-known/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"})
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-15000:]
