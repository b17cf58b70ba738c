"""`make run`: serve the whole system in one process on HOST:PORT (default 127.0.0.1:8000)."""

import uvicorn

from clinishare_allinone.system import SystemSettings, create_system
from clinishare_shared.logging import configure_logging


def main() -> None:
    settings = SystemSettings()
    configure_logging(service="clinishare", level=settings.log_level, json=settings.log_json)
    uvicorn.run(create_system(), host=settings.host, port=settings.port, log_config=None, access_log=False,
                lifespan="on")


main()
