"""Helpers of the browser suite (the fixtures are in conftest.py). A real browser against the real system: `python -m clinishare_allinone` (what `make run` starts) on a
free port, driven by Playwright through Debian's Chromium. One server and one browser per session; each
person gets their own browser context (their own cookies).

Screenshots go to `artifacts/screenshots/` (git-ignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import os
import re
import socket
import uuid

import httpx
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("WEB_ARTIFACTS_DIR", ROOT / "artifacts" / "screenshots"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
PASSWORD = "Tidal-Quartz-Lantern-8841"  # strong: long, not common, no e-mail local part
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email

        message = email.message_from_bytes(envelope.content)
        self.messages.append(message.get_payload(decode=True).decode("utf-8", "replace"))
        return "250 OK"


@dataclass
class Console:
    url: str
    session_key: str
    mailbox: Mailbox
    log: Path

    def token_in(self, cookie_value: str) -> str | None:
        import json

        from clinishare_web.settings import fernet_key

        return json.loads(Fernet(fernet_key(self.session_key)).decrypt(cookie_value.strip('"').encode())).get("token")



@dataclass
class Person:
    """One person at their own browser (own cookies), who records any CSP violation the page reports."""

    name: str
    email: str
    context: BrowserContext
    page: Page
    base: str
    csp_violations: list[str] = field(default_factory=list)

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def sign_up(self, kind: str = "practitioner") -> "Person":
        page = self.go("/signup")
        page.get_by_label("Your name").fill(self.name)
        page.get_by_label("E-mail").fill(self.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("a practitioner" if kind == "practitioner" else "office staff").check()
        page.get_by_role("button", name="Create account").click()
        expect(page.locator(".flash")).to_contain_text("Your account is ready")
        return self.log_in()

    def log_in(self, password: str = PASSWORD) -> "Person":
        page = self.go("/login")
        page.get_by_label("E-mail").fill(self.email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".flash")).to_contain_text("Welcome")
        return self


def screenshot(page: Page, name: str) -> None:
    """Desktop and phone screenshots of the current page, as test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(ARTIFACTS / f"{slug}-{label}.png"), full_page=True)
    if size:
        page.set_viewport_size(size)


class Seed:
    """Data made through the public API (fast), so every page has something to show."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.tag = uuid.uuid4().hex[:8]

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = self.http.request(method, path, headers=headers, **kw)
        assert r.status_code < 400, (method, path, r.status_code, r.text)
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    def account(self, first: str, last: str, kind: str = "practitioner") -> dict[str, Any]:
        email = f"{first.lower()}.{self.tag}@harbour-clinic.org"
        acc = self.call("POST", "/v1/accounts", json={"email": email, "password": PASSWORD, "name": f"Dr {first} {last}"
                                                       if kind == "practitioner" else f"{first} {last}", "kind": kind})
        return {**acc, "token": self.login(email)}

    def login(self, email: str) -> str:
        return self.call("POST", "/v1/auth/token", json={"email": email, "password": PASSWORD})["access_token"]
