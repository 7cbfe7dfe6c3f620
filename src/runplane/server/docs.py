"""``/docs``: Swagger UI from assets runplane serves itself (``swagger/``: swagger-ui-dist
5, which reads the OpenAPI 3.1 document FastAPI writes; ``scripts/vendor-swagger-ui.sh``
updates them), so the API description reads offline and behind a firewall; FastAPI's own
page loads them from a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: The vendored assets (see scripts/vendor-swagger-ui.sh).
SWAGGER_UI = Path(__file__).parent / "swagger"

#: Where the Swagger UI assets are served: public files, open without a key.
ASSETS = "/docs/assets"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (FastAPI built with ``docs_url=None``) and its assets."""
    app.mount(ASSETS, StaticFiles(directory=str(SWAGGER_UI)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
