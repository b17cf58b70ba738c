"""`make run`: serve the whole system in one process on HOST:PORT (default 127.0.0.1:8000).

The database: ``MONGODB_URL`` if set; else FerretDB (built by ``make ferretdb``) started here on
``DATA_DIR/ferretdb`` and stopped with this process, so data and identity's signing key survive a
restart; else, where FerretDB cannot be had (no Go), the in-process fallback, with a loud warning that
everything is lost at exit.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import structlog

from clinishare_allinone.system import SystemSettings, create_system
from clinishare_shared import ferretdb
from clinishare_shared.logging import configure_logging
from clinishare_shared.observability import setup_tracing
from clinishare_shared.serve import load_settings, run

log = structlog.get_logger("clinishare.allinone")


@contextlib.contextmanager
def database(settings: SystemSettings) -> Iterator[str | None]:
    if settings.mongodb_url:
        log.info("database_engine", engine="MongoDB from MONGODB_URL")
        yield settings.mongodb_url
        return
    try:
        server = ferretdb.FerretDB(settings.data_dir / "ferretdb", port=settings.ferretdb_port or None).start()
    except ferretdb.FerretDBUnavailable as exc:
        log.warning("database_engine_fallback", engine="in-process (mongomock)", reason=str(exc),
                    warning="data is kept in memory only and LOST when this process stops; "
                            "install Go and run `make run` again to use FerretDB")
        yield None
        return
    log.info("database_engine", engine=ferretdb.LABEL, url=server.url, data_dir=str(server.data_dir))
    try:
        yield server.url
    finally:
        server.stop()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler that was
    # there before it: make that one exit through Python, so FerretDB is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    settings = load_settings(SystemSettings, service="clinishare")
    configure_logging(service="clinishare", level=settings.log_level, json=settings.log_json)
    setup_tracing("allinone")
    with database(settings) as mongodb_url:
        run(create_system(mongodb_url=mongodb_url), settings)


main()
