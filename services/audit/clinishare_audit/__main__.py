"""``python -m clinishare_audit``: the audit service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_audit.app import create_app
from clinishare_audit.settings import AuditSettings


def main() -> None:
    run_service(AuditSettings, create_app)


if __name__ == "__main__":
    main()
