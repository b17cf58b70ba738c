"""``python -m clinishare_notify``: the notify service as its own process (settings from the environment).

``python -m clinishare_notify rebuild-lookups``: list every notice under the grant or document it tells of
(``notice_refs``), and the identity projection's documents in their lookups, again. Run it once after an
upgrade from a release that wrote no lookups, when the last replica of that release has stopped. Safe while
the service runs.
"""

from typing import Any

from clinishare_shared.projection import rebuild_links
from clinishare_shared.serve import main as serve_main

from clinishare_notify.app import create_app
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import NotifyStore


async def rebuild_lookups(db: Any, settings: Any = None) -> dict[str, Any]:
    return {"notice_lookups": await NotifyStore(db).index_refs(force=True), **await rebuild_links(db, settings)}


def main(argv: list[str] | None = None) -> None:
    serve_main(NotifySettings, create_app, {"rebuild-lookups": rebuild_lookups}, argv)


if __name__ == "__main__":
    main()
