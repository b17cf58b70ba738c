"""Each process as operations start it (``python -m ...``): it refuses to run on embedded engines unless
asked, names unknown settings, and logs nothing but JSON lines (uvicorn's own lines included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from clinishare_shared.processes import free_port

ENV_KEEP = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k in ENV_KEEP}, **extra}



def json_lines(output: str) -> list[dict]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return parsed


@pytest.mark.parametrize("service", ["identity", "charts", "documents", "forms", "notify", "audit"])
def test_a_standalone_service_refuses_to_start_without_its_servers(service: str) -> None:
    result = subprocess.run([sys.executable, "-m", f"clinishare_{service}"], env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = [r for r in json_lines(result.stdout) if r["event"] == "refusing_to_start"]
    assert line["missing"] == ["MONGODB_URL", "AMQP_URL"] and line["level"] == "error"


def test_an_unknown_prefixed_variable_stops_the_start_and_is_named() -> None:
    env = clean_env(MONGODB_URL="mongodb://127.0.0.1:1", AMQP_URL="amqp://u:realpw@127.0.0.1:1/",
                    CHARTS_IDENTITY_ULR="http://identity:8001")
    result = subprocess.run([sys.executable, "-m", "clinishare_charts"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    [line] = [r for r in json_lines(result.stdout) if r["event"] == "settings_invalid"]
    assert "CHARTS_IDENTITY_ULR" in json.dumps(line["errors"])


def test_the_gateway_listens_on_its_settings_and_logs_only_json() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clinishare_gateway"],
                            env=clean_env(GATEWAY_PORT=str(port), PORT="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"x-request-id": "ops-check-1"}, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not come up"
                time.sleep(0.1)
        assert r.status_code == 200 and r.headers.get_list("x-request-id") == ["ops-check-1"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    records = json_lines(out)
    loggers = {r.get("logger") for r in records}
    assert "uvicorn.error" in loggers, "uvicorn's own lines are there, as JSON"
    assert any(r["event"] == "request" and r.get("request_id") == "ops-check-1" for r in records)


def test_no_service_imports_the_embedded_engine_or_test_packages() -> None:
    """The production image has neither mongomock nor aiosmtpd: nothing a service imports may need them."""
    modules = [f"clinishare_{s}.app" for s in ("identity", "charts", "documents", "forms", "notify", "audit")]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) + "import clinishare_gateway.app\n"
            "import clinishare_shared.serve, clinishare_shared.topology, clinishare_shared.healthcheck\n"
            "print(sorted(m for m in ('mongomock', 'aiosmtpd', 'pytest', 'hypothesis') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("service", ["charts", "documents", "forms", "notify", "audit"])
def test_rebuild_lookups_needs_the_service_database_and_other_commands_are_refused(service: str) -> None:
    refused = subprocess.run([sys.executable, "-m", f"clinishare_{service}", "rebuild-lookups"], env=clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert [r["detail"] for r in json_lines(refused.stdout) if r["event"] == "rebuild_lookups_refused"] == [
        "MONGODB_URL is not set"]
    unknown = subprocess.run([sys.executable, "-m", f"clinishare_{service}", "drop-everything"], env=clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "usage:" in unknown.stderr and "rebuild-lookups" in unknown.stderr


def test_rebuild_lookups_runs_on_the_service_database_and_says_what_it_did(mongodb_url: str | None,
                                                                          db_name: str) -> None:
    if not mongodb_url:
        pytest.skip("needs a database server the command can reach (FerretDB under make test, or MONGODB_URL)")
    result = subprocess.run([sys.executable, "-m", "clinishare_charts", "rebuild-lookups"],
                            env=clean_env(MONGODB_URL=mongodb_url, CHARTS_MONGODB_DATABASE=db_name),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [r for r in json_lines(result.stdout) if r["event"] == "rebuild_lookups"]
    assert line["chart_lookups"] == 0 and line["projection_lookups"] == 0  # an empty database: nothing to list
