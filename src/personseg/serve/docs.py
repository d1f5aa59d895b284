"""``/docs`` (Swagger UI) and ``/redoc`` served from files installed with a package, never from a CDN.

FastAPI's own pages load their JavaScript from a CDN, so they are blank offline or behind a firewall. The
assets come from ``fastapi-offline`` (part of ``personseg[serve]``: Swagger UI and ReDoc, MIT / Apache-2.0);
without it both routes answer a plain HTML page listing the routes and linking ``/openapi.json``.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS_URL = "/docs-assets"

#: The pages may load only from this server: ReDoc's bundle hard-codes a logo from cdn.redoc.ly in its menu footer,
#: which would otherwise leave the machine on every page view.
SAME_ORIGIN_ONLY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:"
)


def _assets_dir() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def mount_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two documentation routes to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    assets = _assets_dir()
    if assets is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    def page(request: Request, render) -> HTMLResponse:
        """The page ``render(root)`` draws from the local assets, limited to this server; a plain one without."""
        root = request.scope.get("root_path", "")
        if assets is None:
            return _plain_page(app, root)
        response = render(root)
        response.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response

    title = f"{app.title} - API docs"

    @app.get(docs_url, include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        return page(
            request,
            lambda root: get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=title,
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            ),
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return page(
            request,
            lambda root: get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=title,
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            ),
        )


def _plain_page(app: FastAPI, root: str) -> HTMLResponse:
    """The routes and their summaries as plain HTML: no script, no asset, nothing fetched."""
    rows = []
    for path, methods in app.openapi().get("paths", {}).items():
        for method, op in methods.items():
            summary = op.get("summary") or ""
            text = (op.get("description") or "").split("\n")[0]
            rows.append(
                f"<li><code>{method.upper()} {html.escape(path)}</code>: {html.escape(summary)}"
                f"{' - ' + html.escape(text) if text else ''}</li>"
            )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(app.title)} API</title></head>"
        f"<body><h1>{html.escape(app.title)} {html.escape(app.version)}</h1><ul>{''.join(rows)}</ul>"
        f"<p>The full schema: <a href='{root}{app.openapi_url}'>{app.openapi_url}</a>. "
        "For Swagger UI and ReDoc here, install <code>fastapi-offline</code> (in <code>personseg[serve]</code>).</p>"
        "</body></html>"
    )
    return HTMLResponse(body)
