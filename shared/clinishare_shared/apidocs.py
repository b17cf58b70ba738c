"""Swagger UI from packaged assets (the ``swagger-ui-bundle`` distribution ships Swagger UI's dist): no
CDN, no inline script (the page loads its initializer from us), so it works under a strict CSP."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
          "swagger-ui-standalone-preset.js": "text/javascript", "favicon-32x32.png": "image/png"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css"><link rel="icon" href="{base}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script><script src="{base}/swagger-ui-standalone-preset.js"></script>
<script src="{base}/init.js"></script></body></html>
"""


def install_swagger_ui(app: FastAPI, *, openapi_url: str = "/openapi.json", path: str = "/docs",
                       title: str = "Clinishare API") -> None:
    folder = Path(str(swagger_ui_path))
    init = ("window.ui = SwaggerUIBundle({url: %s, dom_id: '#swagger-ui', deepLinking: true, "
            "presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout'});"
            % json.dumps(openapi_url))

    @app.get(path, include_in_schema=False)
    async def swagger_page() -> HTMLResponse:
        return HTMLResponse(PAGE.format(title=title, base=path))

    @app.get(f"{path}/init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(init, media_type="text/javascript")

    @app.get(path + "/{asset}", include_in_schema=False)
    async def swagger_asset(asset: str) -> FileResponse:
        if asset not in ASSETS:
            raise HTTPException(404)
        return FileResponse(folder / asset, media_type=ASSETS[asset])
