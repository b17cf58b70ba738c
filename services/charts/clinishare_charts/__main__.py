"""``python -m clinishare_charts``: the charts service as its own process (settings from the environment).

``python -m clinishare_charts rebuild-lookups``: add every active grant, chart and note (and the identity
projection's documents) to their lookups again. Run it once after an upgrade from a release that wrote no
lookups, when the last replica of that release has stopped: grants those replicas wrote after the lookups
were first built would otherwise reach nobody. Safe while the service runs (entries are sets).
"""

from typing import Any

from clinishare_shared.projection import rebuild_links
from clinishare_shared.serve import main as serve_main

from clinishare_charts.app import create_app
from clinishare_charts.settings import ChartsSettings
from clinishare_charts.store import ChartStore


async def rebuild_lookups(db: Any, settings: Any = None) -> dict[str, Any]:
    return {"chart_lookups": await ChartStore(db).build_lookups(), **await rebuild_links(db, settings)}


def main(argv: list[str] | None = None) -> None:
    serve_main(ChartsSettings, create_app, {"rebuild-lookups": rebuild_lookups}, argv)


if __name__ == "__main__":
    main()
