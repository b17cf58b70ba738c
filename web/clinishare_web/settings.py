"""The console's settings (env prefix ``WEB_``)."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from clinishare_shared.settings import PLACEHOLDER_SECRETS, ProcessSettings


class WebSettings(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore")

    api_base_url: str = Field(default="http://127.0.0.1:8000",
                              description="the gateway; in the all-in-one process the API is called in-process")
    session_key: str | None = Field(
        default=None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts the session cookie; "
        "unset: a random key per process (every session ends when the process restarts)")
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: Secure when the request came over https (X-Forwarded-Proto too)")
    timeout_seconds: float = 30.0
    page_size: int = Field(default=20, ge=1, le=100)
    port: int = Field(default=8006, ge=1, le=65535, description="port to listen on (alone)")

    @field_validator("session_key")
    @classmethod
    def _no_placeholder(cls, v: str | None) -> str | None:
        if v is not None and (v.lower() in PLACEHOLDER_SECRETS or not _is_fernet_key(v)):
            raise ValueError("WEB_SESSION_KEY must be a Fernet key (not a placeholder); generate one with "
                             "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'")
        return v


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (ValueError, binascii.Error):
        return False
