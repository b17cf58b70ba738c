"""`make run`: serve the whole system in one process on HOST:PORT (default 127.0.0.1:8000)."""

from clinishare_allinone.system import SystemSettings, create_system
from clinishare_shared.logging import configure_logging
from clinishare_shared.serve import load_settings, run


def main() -> None:
    settings = load_settings(SystemSettings, service="clinishare")
    configure_logging(service="clinishare", level=settings.log_level, json=settings.log_json)
    run(create_system(), settings)


main()
