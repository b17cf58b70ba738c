"""Swagger UI from packaged assets: no CDN, no inline script (the page loads its initializer from us), so it
works under a strict CSP. The assets are Swagger UI 5's, shipped in the ``fastapi-offline`` distribution
(``swagger-ui-bundle`` ships Swagger UI 4, which cannot render our OpenAPI 3.1 documents)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
import fastapi_offline

ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript", "favicon.png": "image/png"}
FOLDER = Path(fastapi_offline.__file__).parent / "static"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css"><link rel="icon" href="{base}/favicon.png"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script><script src="{base}/init.js"></script></body></html>
"""


def install_swagger_ui(app: FastAPI, *, openapi_url: str = "/openapi.json", path: str = "/docs",
                       title: str = "Clinishare API") -> None:
    init = ("window.ui = SwaggerUIBundle({url: %s, dom_id: '#swagger-ui', deepLinking: true, "
            "presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});" % json.dumps(openapi_url))

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
        return FileResponse(FOLDER / asset, media_type=ASSETS[asset])
