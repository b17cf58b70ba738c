"""Notify's settings (env prefix ``NOTIFY_``). With no ``smtp_host`` e-mail is disabled: notifications
still land in the inbox and the e-mail is recorded as skipped."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import PLACEHOLDER_SECRETS, ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore")

    service_name: str = "notify"
    port: int = DEFAULT_PORTS["notify"]

    smtp_host: str | None = Field(default=None, description="unset: e-mail disabled (inbox only, logged)")
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="unset: 587 with STARTTLS, else 25")
    smtp_from: str = "Clinishare <no-reply@clinishare.invalid>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    public_base_url: str = "http://127.0.0.1:8000"
    email_retry_seconds: float = Field(default=86400.0, gt=0, description="a failing e-mail is retried with "
                                       "back-off for this long after its notification was created (24 h)")
    email_max_attempts: int | None = Field(default=None, ge=1, le=1000,
                                           description="optional cap on sends; unset: only the retry window")
    email_backoff_base_seconds: float = Field(default=30.0, gt=0)
    email_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    email_poll_seconds: float = Field(default=5.0, gt=0, description="worker poll, besides being woken")
    email_lease_seconds: float = Field(default=120.0, gt=0,
                                       description="a claimed e-mail whose worker died is retried after this")

    @field_validator("smtp_password")
    @classmethod
    def _no_placeholder_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("smtp_password is a placeholder; set a real secret")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> "NotifySettings":
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("set smtp_username and smtp_password together, or neither")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or (587 if self.smtp_starttls else 25)
