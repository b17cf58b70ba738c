"""``python -m clinishare_identity``: the identity service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings


def main() -> None:
    run_service(IdentitySettings, create_app)


if __name__ == "__main__":
    main()
