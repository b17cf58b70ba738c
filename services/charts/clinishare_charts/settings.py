"""Charts settings: ``CHARTS_`` prefixed, over the system-wide defaults of ServiceSettings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import ServiceSettings


class ChartsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHARTS_", extra="ignore")

    service_name: str = "charts"
    identity_url: str = Field(default="http://127.0.0.1:8001",
                              description="identity's base URL, asked for a patient's name when a chart is written")
    port: int = DEFAULT_PORTS["charts"]
    expiry_sweep_seconds: float = Field(default=5.0, gt=0, description="how often expired grants are announced")
