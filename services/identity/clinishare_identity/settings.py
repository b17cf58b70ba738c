from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinishare_shared.routes import DEFAULT_PORTS
from clinishare_shared.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    service_name: str = "identity"
    port: int = DEFAULT_PORTS["identity"]
    signing_key_file: Path | None = Field(
        default=None, description="file holding the Ed25519 private key (PKCS#8 PEM), e.g. a mounted secret; "
        "re-read every key_refresh_seconds, so replacing the secret rotates the key")
    signing_key_pem: str | None = Field(
        default=None, description="Ed25519 private key (PKCS#8 PEM); unset (and no file): generated once and "
        "kept in MongoDB, rotated by `python -m clinishare_identity rotate-key`")
    key_refresh_seconds: float = Field(default=10.0, gt=0, le=300,
                                       description="how often each replica reloads its signing keys")
    token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    invite_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    pin_fail_limit: int = Field(default=10, ge=1)
    pin_window_seconds: int = Field(default=15 * 60, ge=1)
    login_fail_limit: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # argon2-cffi's defaults (RFC 9106 low-memory profile); tests lower them to stay fast.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
