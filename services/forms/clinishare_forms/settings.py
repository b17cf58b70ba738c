from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import ServiceSettings


class FormsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FORMS_", extra="ignore")

    service_name: str = "forms"
    port: int = DEFAULT_PORTS["forms"]
    identity_url: str = "http://127.0.0.1:8001"
