"""``/docs``: Swagger UI from assets runplane serves itself (the ``swagger-ui-bundle``
package ships them), so the API description reads offline and behind a firewall; FastAPI's
own page loads them from a CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

#: Where the Swagger UI assets are served: public files, open without a key.
ASSETS = "/docs/assets"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (FastAPI built with ``docs_url=None``) and its assets."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
