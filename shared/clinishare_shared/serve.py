"""Run one service as its own process (``python -m clinishare_<service>``)."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

from clinishare_shared.logging import configure_logging
from clinishare_shared.settings import ServiceSettings


def serve(app: Any, settings: ServiceSettings, *, default_port: int) -> None:
    configure_logging(service=settings.service_name, level=settings.log_level, json=settings.log_json)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get(f"{settings.service_name.upper()}_PORT", os.environ.get("PORT", default_port)))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
