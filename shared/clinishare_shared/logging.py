"""structlog, JSON to stdout, with the request id and correlation id bound from contextvars.

Our own loggers write through structlog directly. Every standard-library logger (uvicorn's, httpx's,
aio-pika's, ...) goes through the same processors by a ``ProcessorFormatter`` on the root handler, so
there are no plain-text lines: one JSON object per line, whoever logged it.
"""

from __future__ import annotations

import json as _json
import logging
import sys
from typing import Any

import structlog

_HANDLER_NAME = "clinishare-json"


def _json_fallback(obj: Any) -> Any:
    """What structlog's own JSON renderer writes for a value JSON has no type for."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


_ENCODER = _json.JSONEncoder(default=_json_fallback)


def _dumps(event_dict: Any, **_: Any) -> str:
    return _ENCODER.encode(event_dict)


def json_renderer() -> structlog.processors.JSONRenderer:
    """structlog's JSON renderer, its output unchanged, with one encoder made once: ``json.dumps`` with a
    ``default`` builds a new encoder for every line (a third of the renderer's time)."""
    return structlog.processors.JSONRenderer(serializer=_dumps)


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = json_renderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        # each logger resolves its processor chain once, not on every line (one log line per request)
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)

    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        # uvicorn configures its own handlers only when given a log_config; make sure they reach the root
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # the access log would print query strings, and a search query can be a patient's name (PHI);
    # our own middleware logs method, path and status instead. httpx logs every request URL at INFO
    # (query strings again): only its warnings.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
