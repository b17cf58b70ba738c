"""``python -m clinishare_documents``: the documents service as its own process."""

from __future__ import annotations

from clinishare_shared.serve import serve

from clinishare_documents.app import create_app
from clinishare_documents.settings import DocumentsSettings


def main() -> None:
    settings = DocumentsSettings()
    serve(create_app(settings), settings, default_port=settings.port)


if __name__ == "__main__":
    main()
