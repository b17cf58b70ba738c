"""The console's session: an encrypted, authenticated cookie (Fernet), so the access token is stored on
the client only as ciphertext that browser JavaScript can neither read (HttpOnly) nor decrypt, and any
console replica can serve any request without a shared store.

Every session (also the anonymous one a visitor gets before logging in) carries a random CSRF token that
each form posts back; a post whose token is missing or differs is refused with 403.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from clinishare_web.settings import fernet_key

COOKIE = "clinishare_session"


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    token: str | None = None  # the API access token: only ever in this encrypted cookie
    account_id: str | None = None
    kind: str | None = None  # practitioner | staff | patient
    name: str | None = None
    token_expires: float = 0.0
    flash: list[str] = field(default_factory=list)
    dirty: bool = False

    @property
    def authenticated(self) -> bool:
        return bool(self.token) and self.token_expires > time.time()

    @property
    def initials(self) -> str:
        words = [w for w in (self.name or "").replace(".", " ").split() if w[:1].isalpha()]
        if not words:
            return "?"
        return (words[0][0] + (words[-1][0] if len(words) > 1 else "")).upper()

    def csrf_ok(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), str(submitted).encode())

    def login(self, *, token: str, expires_in: int, account: dict[str, Any]) -> None:
        # a new CSRF token at log-in, so one planted before it is worthless after
        self.csrf = secrets.token_urlsafe(32)
        self.token, self.token_expires = token, time.time() + expires_in
        self.account_id, self.kind, self.name = account["id"], account["kind"], account["name"]
        self.dirty = True

    def logout(self) -> None:
        self.token = self.account_id = self.kind = self.name = None
        self.token_expires = 0.0
        self.csrf = secrets.token_urlsafe(32)
        self.dirty = True

    def add_flash(self, message: str) -> None:
        self.flash.append(message)
        self.dirty = True

    def pop_flash(self) -> list[str]:
        messages, self.flash = self.flash, []
        if messages:
            self.dirty = True
        return messages


class SessionCodec:
    def __init__(self, key: str | None, *, max_age: int, secure: str) -> None:
        self.fernet = Fernet(fernet_key(key) if key else Fernet.generate_key())
        self.max_age = max_age
        self.secure = secure

    def load(self, request: Request) -> Session:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = json.loads(self.fernet.decrypt(raw.encode(), ttl=self.max_age))
                data.pop("dirty", None)
                return Session(**data)
            except (InvalidToken, ValueError, TypeError):
                pass
        return Session(dirty=True)

    def save(self, request: Request, response: Response, session: Session) -> None:
        if not session.dirty:
            return
        data = asdict(session)
        data.pop("dirty")
        secure = self.secure == "always" or (self.secure == "auto" and _https(request))
        response.set_cookie(COOKIE, self.fernet.encrypt(json.dumps(data).encode()).decode(), max_age=self.max_age,
                            path="/", httponly=True, secure=secure, samesite="strict")


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"
