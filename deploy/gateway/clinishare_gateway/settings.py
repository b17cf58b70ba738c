"""The gateway's settings (env prefix ``GATEWAY_``): where it listens and where each service is."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import ProcessSettings


class GatewaySettings(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    port: int = DEFAULT_PORTS["gateway"]
    identity_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['identity']}", description="the identity service's base URL (several, comma-separated: round-robin)")
    charts_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['charts']}", description="the charts service's base URL")
    documents_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['documents']}", description="the documents service's base URL")
    forms_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['forms']}", description="the forms service's base URL")
    notify_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['notify']}", description="the notify service's base URL")
    web_url: str | None = Field(default=None, description="the web console's base URL; every path outside /v1 goes there")
    audit_url: str = Field(default=f"http://127.0.0.1:{DEFAULT_PORTS['audit']}", description="the audit service's base URL")
    timeout_seconds: float = Field(default=30.0, gt=0, description="upstream timeout (read, write, waiting for a pooled connection)")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="upstream connect timeout")
    max_connections: int = Field(default=200, ge=1, description="upstream connections open at once, all services together; "
                                 "further requests wait for one (up to timeout_seconds)")
    max_keepalive_connections: int = Field(default=50, ge=0, description="idle upstream connections kept for reuse")

    def upstreams(self, service: str) -> list[str]:
        """The service's replicas: ``<SERVICE>_URL`` may list several base URLs, comma-separated."""
        return [u.strip().rstrip("/") for u in str(getattr(self, f"{service}_url")).split(",") if u.strip()]

    def upstream(self, service: str) -> str:
        return self.upstreams(service)[0]
