"""`python -m clinishare_web`: the console as its own process, calling the API at WEB_API_BASE_URL (the
gateway), which in turn forwards every non-API path here (GATEWAY_WEB_URL)."""

import uvicorn

from clinishare_shared.logging import configure_logging
from clinishare_web.app import create_app
from clinishare_web.settings import WebSettings


def main() -> None:
    settings = WebSettings()
    configure_logging(service="web", level=settings.log_level, json=settings.log_json)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
                server_header=False)


main()
