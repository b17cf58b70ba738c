from clinishare_forms.app import create_app
from clinishare_forms.settings import DEFAULT_PORT, FormsSettings
from clinishare_shared.serve import serve


def main() -> None:
    settings = FormsSettings()
    serve(create_app(settings), settings, default_port=DEFAULT_PORT)


if __name__ == "__main__":
    main()
