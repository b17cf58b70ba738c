"""The console's settings (env prefix ``WEB_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinishare_shared.settings import PLACEHOLDER_SECRETS


class WebSettings(BaseSettings):
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
    host: str = "127.0.0.1"
    port: int = 8006
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("session_key")
    @classmethod
    def _no_placeholder(cls, v: str | None) -> str | None:
        if v is not None and v.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("WEB_SESSION_KEY is a placeholder; generate one with "
                             "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'")
        return v
