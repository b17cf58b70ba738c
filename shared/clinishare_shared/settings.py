"""Settings: one pydantic-settings class per service, each with its own env prefix (``CHARTS_`` ...).

``MONGODB_URL`` and ``AMQP_URL`` are read unprefixed as the system-wide default, so one variable points
every service of the all-in-one process at a real server; a prefixed one overrides it per service.

Settings own everything a process needs, its address included (``<PREFIX>HOST``, ``<PREFIX>PORT``). A
variable that carries a service's prefix but names no setting is an error at start-up (a typo such as
``CHARTS_PROT`` would otherwise be ignored silently).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinishare_shared.bus.stream import StreamSpec, stream_name

PLACEHOLDER_SECRETS = {"changeme", "changethis", "secret", "password"}


class UnknownSettings(ValueError):
    """Environment variables with a settings class's prefix that name none of its fields."""


def unknown_prefixed(prefix: str, fields: Any, environ: Any = None) -> list[str]:
    """The variables in ``environ`` (default: the process environment) that start with ``prefix`` but
    name none of ``fields`` (matching is case-insensitive, as pydantic-settings reads them)."""
    environ = os.environ if environ is None else environ
    if not prefix:
        return []
    known = {name.lower() for name in fields}
    return sorted(k for k in environ if k.upper().startswith(prefix.upper())
                  and k[len(prefix):].lower() not in known)


class ProcessSettings(BaseSettings):
    """What every process of ours has: where it listens and how it logs; refuses unknown prefixed variables."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="127.0.0.1", description="address to listen on (containers: 0.0.0.0)")
    port: int = Field(default=8000, ge=1, le=65535, description="port to listen on")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(default=True, description="JSON log lines (false: console, for a terminal)")

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Any:
        prefix = str(self.model_config.get("env_prefix") or "")
        unknown = unknown_prefixed(prefix, type(self).model_fields)
        if unknown:
            raise UnknownSettings(f"unknown setting(s) in the environment: {', '.join(unknown)} "
                                  f"(no such {prefix}* setting; see the settings table in README.md)")
        return self


class ServiceSettings(ProcessSettings):
    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    mongodb_url: str | None = Field(default=None, description="unset: the in-process engine")
    mongodb_database: str | None = Field(default=None, description="unset: clinishare_<service>")
    amqp_url: str | None = Field(default=None, description="unset: the in-memory bus")
    event_exchange: str = Field(default="clinishare.events", description="the topic exchange every event goes to")
    events_stream: str | None = Field(default=None, description="the replayable stream; default "
                                      "<event_exchange>.stream, i.e. clinishare.events.stream")
    events_stream_max_age_days: int = Field(default=30, ge=1, le=3650, description="stream retention")
    events_stream_max_bytes: int | None = Field(default=None, ge=1, description="optional size cap")
    queue_name: str | None = Field(default=None, description="the service's queue; unset: its name")
    delivery_limit: int = Field(default=5, ge=1, le=100, description="deliveries before a message is dead-lettered")
    publish_timeout: float = Field(default=5.0, description="seconds to wait for the broker's confirm")
    consumer_prefetch: int = Field(default=16, ge=1, le=1000, description="messages the broker hands the service's "
                                   "consumer before it acks (basic.qos): how many of its events are handled at once "
                                   "(one subject's in order); a handler is a few short database writes, so 16 keeps "
                                   "it busy without hoarding what another replica could take")
    outbox_poll_interval: float = Field(default=0.25, description="outbox relay pass interval, besides being woken")
    outbox_lease_seconds: float = Field(default=30.0, gt=0, description="how long a relay holds the documents it "
                                        "claimed; a dead relay's claims are taken over after it")
    outbox_hold: bool = Field(default=False, description="tests only: stage events but publish nothing")
    ttl_purge_interval: float = Field(default=60.0, gt=0, description="how often expired documents are purged "
                                      "where the server has no TTL indexes (FerretDB); MongoDB's own TTL monitor also runs every 60 s")
    jwt_issuer: str = Field(default="clinishare-identity", description="expected token issuer")
    jwt_audience: str = Field(default="clinishare", description="expected token audience")
    jwks_url: str = Field(default="http://127.0.0.1:8001/.well-known/jwks.json", description="identity's public keys")
    jwks_cache_seconds: int = Field(default=300, description="JWKS cache; an unknown kid refetches sooner")
    internal_api_key: str | None = Field(
        default=None, description="the secret services present to each other on internal endpoints (identity's "
        "snapshot for projection catch-up, X-Clinishare-Internal-Key); unset: internal endpoints are off and an "
        "empty projection catches up from the event stream")
    embedded_engines: bool = Field(
        default=False, description="allow the in-process MongoDB engine and the in-memory bus when MONGODB_URL / "
        "AMQP_URL are unset (tests, the all-in-one process); a standalone service refuses to start otherwise")

    @model_validator(mode="before")
    @classmethod
    def _system_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for field, env in (("mongodb_url", "MONGODB_URL"), ("amqp_url", "AMQP_URL"),
                               ("jwks_url", "JWKS_URL"), ("event_exchange", "EVENT_EXCHANGE"),
                               ("events_stream", "EVENTS_STREAM"),
                               ("events_stream_max_age_days", "EVENTS_STREAM_MAX_AGE_DAYS"),
                               ("events_stream_max_bytes", "EVENTS_STREAM_MAX_BYTES"),
                               ("internal_api_key", "INTERNAL_API_KEY"),
                               ("embedded_engines", "EMBEDDED_ENGINES")):
                if values.get(field) in (None, "") and os.environ.get(env):
                    values[field] = os.environ[env]
        return values

    @field_validator("amqp_url", "mongodb_url")
    @classmethod
    def _no_placeholder_password(cls, v: str | None) -> str | None:
        # guest/guest is RabbitMQ's loopback-only default and fine here; a copied "changeme" is not.
        password = urlsplit(v).password if v else None
        if password is not None and unquote(password).lower() in PLACEHOLDER_SECRETS:
            raise ValueError("the URL carries a placeholder password; set a real secret")
        return v

    @field_validator("internal_api_key")
    @classmethod
    def _no_placeholder_key(cls, v: str | None) -> str | None:
        if v and (v.lower() in PLACEHOLDER_SECRETS or len(v) < 16):
            raise ValueError("INTERNAL_API_KEY is a placeholder or shorter than 16 characters; set a real secret")
        return v or None

    def missing_servers(self) -> list[str]:
        """The system-wide variables a standalone process needs and does not have."""
        return [env for env, value in (("MONGODB_URL", self.mongodb_url), ("AMQP_URL", self.amqp_url)) if not value]

    @property
    def database(self) -> str:
        return self.mongodb_database or f"clinishare_{self.service_name}"

    @property
    def stream(self) -> StreamSpec:
        """Every service declares the same stream with the same arguments (system-wide, unprefixed env)."""
        return StreamSpec(name=self.events_stream or stream_name(self.event_exchange),
                          max_age_days=self.events_stream_max_age_days,
                          max_length_bytes=self.events_stream_max_bytes)

    @property
    def queue(self) -> str:
        return self.queue_name or self.service_name
