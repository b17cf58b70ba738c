"""``python -m clinishare_notify``: the notify service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_notify.app import create_app
from clinishare_notify.settings import NotifySettings


def main() -> None:
    run_service(NotifySettings, create_app)


if __name__ == "__main__":
    main()
