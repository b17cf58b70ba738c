from clinishare_shared.serve import serve

from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings


def main() -> None:
    settings = IdentitySettings()
    serve(create_app(settings), settings, default_port=8001)


if __name__ == "__main__":
    main()
