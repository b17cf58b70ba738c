"""`make bench` at tiny sizes, so the benchmark keeps running as the code changes. The figures of a quick
run mean nothing; what is checked is that every scenario ran and printed its line with the engine, the
target and a verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinishare_shared.testing import ferretdb_pid

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["Charts Shared With You", "reading a chart", "creating chart shares",
           "share -> notification processed", "end-to-end share throughput", "gateway overhead",
           "relay pass growth"]


@pytest.mark.e2e
def test_bench_quick_prints_every_target_line(tmp_path: Path, amqp_url: str, mongodb_url: str | None) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "AMQP_URL": amqp_url}
    if mongodb_url:
        env["MONGODB_URL"] = mongodb_url
    engine_pid = ferretdb_pid()
    if engine_pid is not None:  # the FerretDB the tests run on: its CPU per share is counted and bounds the rate
        env["BENCH_FERRETDB_PID"] = str(engine_pid)
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = json.loads(out.read_text())
    engine = lines[0]["engine"]
    assert engine and all(line["engine"] == engine for line in lines)
    for target in TARGETS:
        found = [r for r in lines if r["scenario"].startswith(target)]
        assert found, target
        for line in found:  # the gateway's has two: a bare endpoint behind it, and the real stack
            assert line["verdict"] in ("met", "MISSED"), line
            assert f"[{engine}] {line['scenario']}:" in proc.stdout
            if line["verdict"] == "MISSED":
                # a missed target comes with the profile that shows why
                assert line["profiles"] and all(Path(p).exists() for p in line["profiles"]), line
    # the floors under the single-service targets, in the same run and against the same baseline
    floors = {r["floor"]: r for r in lines if "floor" in r}
    assert set(floors) == {"frame", "one_read"}
    assert all(r["ratio"] > 0 and r["baseline_rate"] > 0 for r in floors.values())
    # and what they say of each single-service target: within reach only at or above the one-read floor
    bounds = [r for r in lines if r["scenario"].startswith("bound on ")]
    assert len(bounds) == 3
    for r in bounds:
        assert r["floor_ratio"] == floors["one_read"]["ratio"]
        assert r["reachable"] == (r["floor_ratio"] >= r["target_ratio"])
    # beside the gateway's target lines, the same gateway over an upstream that only waits, CPU counted
    gateway = [r for r in lines if r["scenario"].startswith("gateway overhead (")]
    waiting = [r for r in lines if r["scenario"].startswith("the gateway over an upstream that sleeps")]
    assert len(gateway) == 2 and len(waiting) == 1
    assert waiting[0]["upstream_wait_ms"] > 0 and waiting[0]["direct_p50_ms"] >= waiting[0]["upstream_wait_ms"]
    assert gateway[0]["gateway_cpu_us"] > 0 and waiting[0]["gateway_cpu_us"] > 0
    assert gateway[1]["quiet_after_s"] > 0  # the reading-a-chart line waited for the stack to be quiet
    # the engine's own cost per call, what every figure stands on
    assert len([r for r in lines if r["scenario"].startswith("engine: find_one by _id")]) >= 2
    sizes = [r["charts"] for r in lines if r["scenario"].startswith("listing latency")]
    assert len(sizes) == 2
    # and with more grants reaching the viewer (each on a chart of its own)
    grants = [r["grants"] for r in lines if r["scenario"].startswith("listing with")]
    assert len(grants) == 2 and grants[1] > grants[0]
    assert len([r for r in lines if r["scenario"].startswith("listing growth") and "grants" in r["scenario"]]) == 1
    assert len([r for r in lines if r["scenario"].startswith("relay pass after one write")]) == 2
    # beside it, a write conditional on the document's state at the same two sizes, and its growth
    assert [r["documents"] for r in lines if r["scenario"].startswith("a compare-and-set by _id")] == \
        [r["documents"] for r in lines if r["scenario"].startswith("relay pass after one write")]
    assert len([r for r in lines if r["scenario"].startswith("compare-and-set growth")]) == 1
    # next to the five-process lines: the disk's sync latency, and where the burst's CPU went
    disk = [r for r in lines if r["scenario"].startswith("disk: fdatasync")]
    assert len(disk) == 1 and disk[0]["p50_ms"] > 0
    cpu = [r for r in lines if r["scenario"].startswith("CPU per share in the throughput burst")]
    assert len(cpu) == 1 and {"charts", "notify", "audit", "gateway"} <= set(cpu[0]["cpu_ms_per_share"])
    assert sum(cpu[0]["cpu_ms_per_share"].values()) > 0 and cpu[0]["ceiling_per_s"] > 0
    # on FerretDB, the rate its own CPU per share allows, whatever the services cost
    ceiling = [r for r in lines if r["scenario"].startswith("throughput ceiling of the engine alone")]
    if engine_pid is not None:
        assert len(ceiling) == 1 and ceiling[0]["engine_ms_per_share"] == cpu[0]["cpu_ms_per_share"]["FerretDB"]
        assert ceiling[0]["engine_ceiling_per_s"] >= cpu[0]["ceiling_per_s"]
    else:
        assert ceiling == []
