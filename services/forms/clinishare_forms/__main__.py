"""``python -m clinishare_forms``: the forms service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_forms.app import create_app
from clinishare_forms.settings import FormsSettings


def main() -> None:
    run_service(FormsSettings, create_app)


if __name__ == "__main__":
    main()
