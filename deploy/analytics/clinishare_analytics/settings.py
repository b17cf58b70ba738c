from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinishare_shared.bus.stream import stream_name
from clinishare_shared.events import EXCHANGE
from clinishare_shared.settings import UnknownSettings, unknown_prefixed


class AnalyticsSettings(BaseSettings):
    """``ANALYTICS_*``; ``AMQP_URL`` and ``EVENTS_STREAM`` are read too, like the services do."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    stream: str = stream_name(EXCHANGE)
    out_dir: Path = Path("var/analytics")
    prefetch: int = Field(default=500, ge=1, le=10_000, description="a stream consumer needs one")
    save_every: int = Field(default=500, ge=1, description="events between two saves of the offset")
    idle_seconds: float = Field(default=5.0, gt=0, description="follow mode: rewrite the reports after this "
                                "long without events; catch-up mode: give up waiting for the end after it")
    keep_ids_days: int = Field(default=35, ge=1, description="days of counted ids kept for deduplication")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> "AnalyticsSettings":
        unknown = unknown_prefixed("ANALYTICS_", type(self).model_fields)
        if unknown:
            raise UnknownSettings(f"unknown setting(s) in the environment: {', '.join(unknown)}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _system_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for name, env in (("amqp_url", "AMQP_URL"), ("stream", "EVENTS_STREAM")):
                if values.get(name) in (None, "") and os.environ.get(env):
                    values[name] = os.environ[env]
        return values
