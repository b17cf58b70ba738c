"""Request and event context (request id, correlation id) carried in contextvars and bound to logs."""

from __future__ import annotations

import structlog


def current_correlation_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("correlation_id")


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")
