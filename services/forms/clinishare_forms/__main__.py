"""``python -m clinishare_forms``: the forms service as its own process (settings from the environment).

``python -m clinishare_forms rebuild-lookups``: the identity projection's lookups from its documents again
(after an upgrade from a release that wrote none, once its last replica has stopped). Safe while it runs.
"""

from clinishare_shared.projection import rebuild_links
from clinishare_shared.serve import main as serve_main

from clinishare_forms.app import create_app
from clinishare_forms.settings import FormsSettings


def main(argv: list[str] | None = None) -> None:
    serve_main(FormsSettings, create_app, {"rebuild-lookups": rebuild_links}, argv)


if __name__ == "__main__":
    main()
