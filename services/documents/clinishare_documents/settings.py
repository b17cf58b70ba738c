"""The documents service's settings (env prefix ``DOCUMENTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import ServiceSettings


class DocumentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOCUMENTS_", extra="ignore")

    service_name: str = "documents"
    port: int = DEFAULT_PORTS["documents"]
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1, description="largest file accepted, in bytes")
    identity_url: str = "http://127.0.0.1:8001"
    gridfs_bucket: str = "fs"
    expiry_sweep_seconds: float = Field(default=5.0, gt=0, description="how often expired shares are dropped")
    label_lease_seconds: float = Field(default=30.0, gt=0, description="a label call's reservations and its "
                                       "unfinished intent are taken over by the sweeper after this")
    label_sweep_seconds: float = Field(default=30.0, gt=0, description="how often unfinished label calls are "
                                       "rolled forward (also at start-up)")
