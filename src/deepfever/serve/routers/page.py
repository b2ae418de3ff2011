"""The page at ``/`` and the API reference at ``/docs``: static files shipped in the package (no CDN)."""
from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "docs.html": "text/html; charset=utf-8",
                "docs.js": "text/javascript; charset=utf-8"}

router = APIRouter(include_in_schema=False)


@cache
def static_file(name: str) -> bytes:
    """A file of ``static/``, read once (no file access per request; only names of ``STATIC_FILES`` get here)."""
    return resources.files("deepfever.serve").joinpath("static", name).read_bytes()


@router.get("/", response_class=HTMLResponse)
async def page() -> Response:
    return Response(static_file("index.html"), media_type=STATIC_FILES["index.html"])


@router.get("/docs", response_class=HTMLResponse)
async def docs() -> Response:
    return Response(static_file("docs.html"), media_type=STATIC_FILES["docs.html"])


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
    return Response(static_file(name), media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})
