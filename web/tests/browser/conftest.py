"""Fixtures of the browser suite: one all-in-one server and one Chromium per session (see support.py)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).parent))  # support.py, for the test modules too

from support import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, DESKTOP, Browser, Console, Mailbox, Person, free_port, sync_playwright,
)

def stop(proc: subprocess.Popen[Any]) -> None:
    """End a process this suite started: politely, then for sure."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory, mongodb_url: str | None) -> Iterator[Console]:
    port, unique = free_port(), uuid.uuid4().hex[:8]
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    key = secrets.token_urlsafe(32)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_JSON": "true", "LOG_LEVEL": "WARNING",
           "WEB_SESSION_KEY": key, "NOTIFY_SMTP_HOST": "127.0.0.1", "NOTIFY_SMTP_PORT": str(smtp.port),
           "NOTIFY_PUBLIC_BASE_URL": url}
    env.pop("AMQP_URL", None)  # the in-memory bus: this suite is about the console, not the broker
    workdir = tmp_path_factory.mktemp("console")
    env["DATA_DIR"] = str(workdir / "data")  # never the developer's ./var
    if mongodb_url:  # the session's engine (FerretDB, or MONGODB_URL), with databases of our own
        env["MONGODB_URL"] = mongodb_url
        for name in ("identity", "charts", "documents", "forms", "notify"):
            env[f"{name.upper()}_MONGODB_DATABASE"] = f"web_{unique}_{name}"
    log = workdir / "allinone.log"
    proc = subprocess.Popen([sys.executable, "-m", "clinishare_allinone"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the all-in-one process exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the all-in-one process did not become ready in 60 s")
            time.sleep(0.1)
        yield Console(url=url, session_key=key, mailbox=mailbox, log=log)
    finally:
        stop(proc)
        smtp.stop()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Chromium for the whole session, headless, with its DevTools endpoint on a loopback port."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)")
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--remote-debugging-address=127.0.0.1",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", *CHROMIUM_ARGS,
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    endpoint = None
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while endpoint is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        endpoint = found.group(1) if found else None
    if endpoint is None:
        proc.kill()
        pytest.fail("Chromium did not start (no DevTools endpoint within 30 s)")
    # keep reading its stderr so a chatty browser never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        yield endpoint
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    # Playwright connects per module to the session's one Chromium: its sync API keeps an event loop
    # running in this thread while it is open, and the async tests collected after these modules need the
    # thread's loop free.
    with sync_playwright() as p:
        b = p.chromium.connect_over_cdp(chromium)
        yield b
        b.close()  # disconnects; the browser itself lives until the session ends


@pytest.fixture
def people(browser: Browser, console: Console) -> Iterator[Any]:
    made: list[Person] = []

    def make(first: str, last: str = "Example", *, viewport: dict[str, int] = DESKTOP) -> Person:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        context.set_default_timeout(15_000)
        page = context.new_page()
        person = Person(name=f"Dr {first} {last}", email=f"{first.lower()}.{uuid.uuid4().hex[:8]}@harbour-clinic.org",
                        context=context, page=page, base=console.url)
        page.on("console", lambda msg: person.csp_violations.append(msg.text)
                if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
        made.append(person)
        return person

    yield make
    for person in made:
        assert not person.csp_violations, f"{person.name}'s pages broke the CSP: {person.csp_violations}"
        person.context.close()

