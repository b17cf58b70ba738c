"""The README's walk-through, run verbatim (bash, curl, jq) against the one-process system: what the
README says works must work."""

import asyncio
import csv
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from clinishare_allinone.system import create_system
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walk-through", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the walk-through needs curl and jq")
async def test_readme_walkthrough_runs_as_written(tmp_path: Path, mongodb_url: str | None, mongo_client: Any,
                                                  unique: str) -> None:
    script = tmp_path / "walkthrough.sh"
    script.write_text("set -euo pipefail\n" + walkthrough())
    mongo_client.test_databases.extend(f"readme_{unique}_{name}" for name in SERVICES)
    async with LiveServer(create_system(mongodb_url=mongodb_url, database_prefix=f"readme_{unique}")) as server:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(script), env={**os.environ, "BASE": server.url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    assert proc.returncode == 0, f"stdout:\n{text}\nstderr:\n{err.decode()}"
    assert '"Rash follow-up"' in text                      # Bob found the shared chart
    assert '"labs.txt"' in text                            # Jane sees the document in the portal
    assert "CBC: within normal limits" in text             # ... and can read it
    # Alice reads the CSV of Jane's submission: a header naming the field, and Jane's answer under it (the
    # JSON printed before it ends without a newline, so the CSV starts mid-line)
    csv_text = text[text.rindex("quality,submitted_at,"):]
    [row] = list(csv.DictReader(csv_text.splitlines()[:2]))
    assert row["quality"] == "4"
    # who can see this, who read it, and Jane's disclosures with Bob's read, the chain intact
    assert '{"who":"Dr Bob","via":["pin"]}' in text
    assert '"read_by":"Dr Bob"' in text
    assert '{"action":"accessed","item_type":"chart","by":"Dr Alice","to":[],"read_by":"Dr Bob"}' in text
    assert '{"ok":true,' in text
    inboxes = [line for line in text.splitlines() if line.startswith("[")]
    bob, jane, alice = (set(re.findall(r'"([a-z_.]+)"', line)) for line in inboxes[-3:])
    assert {"identity.connection.created", "charts.share.granted", "documents.shared", "forms.shared"} <= bob
    assert {"documents.shared", "forms.assigned"} <= jane
    assert {"charts.note.added", "forms.submitted"} <= alice
