"""``python -m clinishare_charts``: the charts service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_charts.app import create_app
from clinishare_charts.settings import ChartsSettings


def main() -> None:
    run_service(ChartsSettings, create_app)


if __name__ == "__main__":
    main()
