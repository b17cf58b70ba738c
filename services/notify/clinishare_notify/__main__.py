from clinishare_shared.serve import serve

from clinishare_notify.app import create_app
from clinishare_notify.settings import NotifySettings


def main() -> None:
    settings = NotifySettings()
    serve(create_app(settings), settings, default_port=settings.port)


if __name__ == "__main__":
    main()
