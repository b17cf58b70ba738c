"""``python -m clinishare_charts``: the charts service as its own process."""

from clinishare_charts.app import create_app
from clinishare_charts.settings import ChartsSettings
from clinishare_shared.serve import serve


def main() -> None:
    settings = ChartsSettings()
    serve(create_app(settings), settings, default_port=settings.port)


if __name__ == "__main__":
    main()
