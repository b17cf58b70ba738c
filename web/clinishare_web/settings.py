"""The console's settings (env prefix ``WEB_``)."""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from clinishare_shared.settings import PLACEHOLDER_SECRETS, ProcessSettings


class WebSettings(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore")

    api_base_url: str = Field(default="http://127.0.0.1:8000",
                              description="the gateway; in the all-in-one process the API is called in-process")
    session_key: str | None = Field(
        default=None, min_length=16, description="secret (at least 16 characters) from which the key that "
        "encrypts the session cookie is derived; unset: a random key per process (every session ends when the "
        "process restarts). Every replica needs the same one.")
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60, description="how long the session cookie "
                                         "lives (the access token inside still expires on its own)")
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: Secure when the request came over https (X-Forwarded-Proto too)")
    timeout_seconds: float = Field(default=30.0, gt=0, description="timeout of a call to the API")
    page_size: int = Field(default=20, ge=1, le=100, description="rows per page of a list")
    port: int = Field(default=8006, ge=1, le=65535, description="port to listen on (alone)")

    @field_validator("session_key")
    @classmethod
    def _no_placeholder(cls, v: str | None) -> str | None:
        if v is not None and (v.lower() in PLACEHOLDER_SECRETS or "changeme" in v.lower() or "changethis" in v.lower()):
            raise ValueError("WEB_SESSION_KEY is a placeholder; generate one with "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return v



def fernet_key(secret: str) -> bytes:
    """The cookie's Fernet key, derived from the configured secret (any long random string)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"clinishare-web-session\0" + secret.encode()).digest())
