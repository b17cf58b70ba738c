"""``python -m clinishare_audit``: the audit service as its own process (settings from the environment).

``python -m clinishare_audit rebuild-lookups``: the identity projection's lookups from its documents again
(after an upgrade from a release that wrote none, once its last replica has stopped). Safe while it runs.
"""

from clinishare_shared.projection import rebuild_links
from clinishare_shared.serve import main as serve_main

from clinishare_audit.app import create_app
from clinishare_audit.settings import AuditSettings


def main(argv: list[str] | None = None) -> None:
    serve_main(AuditSettings, create_app, {"rebuild-lookups": rebuild_links}, argv)


if __name__ == "__main__":
    main()
