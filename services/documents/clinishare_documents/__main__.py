"""``python -m clinishare_documents``: the documents service as its own process (settings from the environment)."""

from clinishare_shared.serve import run_service

from clinishare_documents.app import create_app
from clinishare_documents.settings import DocumentsSettings


def main() -> None:
    run_service(DocumentsSettings, create_app)


if __name__ == "__main__":
    main()
