"""Serving the browser client (``clients/web``) at ``/``: static files only, nothing listed, nothing outside.

The web client is plain files (HTML, ES modules, CSS, images) with every cryptographic operation done in
the browser; the relay hands them out and nothing more. Only ``/`` (``index.html``) and the files under
the client's asset folders are served, so API paths keep their own 404 and 405 answers. A request names a
file by a path of plain segments: no ``..``, no ``.`` or hidden segment, no backslash or NUL, and the
resolved file must lie inside the web root (symbolic links leading out are refused). Directories are never
listed. The security headers, including the strict Content-Security-Policy, come from ``http.py``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

# The folders of clients/web that hold assets; "/" serves index.html.
ASSET_FOLDERS = ("js", "css", "img")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


def default_web_root() -> Path | None:
    """``clients/web`` of this source tree, if it is there (an installed wheel has no web client)."""
    candidate = Path(__file__).resolve().parents[2] / "clients" / "web"
    return candidate if (candidate / "index.html").is_file() else None


def resolve_file(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``root``, or None for anything else (see the module docstring)."""
    segments = relative.split("/")
    for segment in segments:
        if not segment or segment.startswith(".") or "\\" in segment or "\x00" in segment:
            return None
    base = root.resolve()
    candidate = base.joinpath(*segments).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def file_response(path: Path) -> Response:
    """The file with its type (only known types are served) and an ETag; HEAD gets the headers only."""
    media_type = CONTENT_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise StarletteHTTPException(404)
    # Revalidate every time: a stale module next to a fresh one is a broken client.
    return FileResponse(path, media_type=media_type, headers={"cache-control": "no-cache"})


class AssetFiles:
    """An ASGI app serving the files of one asset folder; unknown files are the relay's JSON 404."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        # A Mount keeps the whole path and puts its own prefix in root_path.
        full, prefix = scope.get("path", ""), scope.get("root_path", "")
        relative = full[len(prefix) :] if full.startswith(prefix) else full
        path = resolve_file(self.root, relative.lstrip("/"))
        if scope.get("method") not in ("GET", "HEAD") or path is None:
            raise StarletteHTTPException(404)
        await file_response(path)(scope, receive, send)


def mount_web_client(app: FastAPI, root: Path) -> None:
    """Serve ``root/index.html`` at ``/`` and ``root/<folder>/…`` for each asset folder."""
    index = root / "index.html"

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_client_index() -> Response:
        if not index.is_file():
            raise StarletteHTTPException(404)
        return file_response(index)

    for folder in ASSET_FOLDERS:
        app.mount(f"/{folder}", AssetFiles(root / folder), name=f"web-{folder}")
