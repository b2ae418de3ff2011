"""The HTTP layer: FastAPI routes over an ``ExpressionService``, limits enforced at the edge.

Routes (versioned under ``/v1``): ``POST extract``, ``compare``, ``odd-one-out``, ``search``,
``GET health``, ``GET index/thumbnails/{row}``; the page at ``/`` and a self-contained API
reference at ``/docs`` (no CDN: the machine may be offline). Requests are refused before their body
is read when the server is full (503 + ``Retry-After``) or the declared body is too large (413).
"""
from __future__ import annotations

import asyncio
import threading
from importlib import resources
from typing import Any, Awaitable, Callable, TypeVar

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepfever._version import __version__
from deepfever.applications.compare import ODD_ONE_OUT_TEMPERATURE
from deepfever.serve._service import Analysis, ExpressionService
from deepfever.serve._uploads import ClientInputError

T = TypeVar("T")
RETRY_AFTER_S = 1
MAX_SEARCH_K = 100
MAX_NAME_CHARS = 200
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "docs.html": "text/html; charset=utf-8",
                "docs.js": "text/javascript; charset=utf-8"}


class ServerBusy(Exception):
    """The server cannot take this request now (queue full or out of time); the client may retry."""


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class EdgeLimits:
    """ASGI middleware: admission (at most ``max_concurrency`` POSTs in flight) and the body-size limit.

    A declared ``Content-Length`` over the limit is refused before one byte of the body is read; a
    body that streams past the limit (chunked uploads) is cut off where it crosses it.
    """

    def __init__(self, app: ASGIApp, service: ExpressionService) -> None:
        self.app = app
        self.service = service
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        settings, counters = self.service.settings, self.service.counters_
        limit = settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            counters.refused_input += 1
            await _send_json(send, 413, {"detail": f"request body of {int(declared):,} bytes exceeds the limit of {limit:,} "
                                                   f"bytes (--max-upload-mb {settings.max_upload_mb:g}); send smaller images"})
            return
        if self.in_flight >= settings.max_concurrency:
            counters.refused_busy += 1
            await _send_json(send, 503, {"detail": f"server busy: {self.in_flight} requests in flight (--max-concurrency "
                                                   f"{settings.max_concurrency}); retry after {RETRY_AFTER_S} s"},
                             [(b"retry-after", str(RETRY_AFTER_S).encode())])
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                counters.refused_input += 1
                # FastAPI passes HTTPExceptions raised while parsing a form through unchanged.
                raise StarletteHTTPException(413, f"request body exceeds the limit of {limit:,} bytes "
                                                  f"(--max-upload-mb {settings.max_upload_mb:g}); send smaller images")
            return message

        self.in_flight += 1
        counters.requests += 1
        try:
            await self.app(scope, limited_receive, send)
        finally:
            self.in_flight -= 1


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    response = JSONResponse(body, status_code=status, headers={key.decode(): value.decode() for key, value in headers})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def _wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client closes the connection (the body has been read, so nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _guarded(request: Request, service: ExpressionService, work: Callable[[threading.Event], Awaitable[T]]) -> T:
    """Run ``work`` unless the client disconnects or the request time runs out; then the rest is skipped."""
    cancelled = threading.Event()
    task = asyncio.ensure_future(work(cancelled))
    watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, timeout=service.settings.request_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    cancelled.set()
    task.cancel()
    if watcher in done:
        service.counters_.disconnected += 1
        raise ClientGone()
    service.counters_.timed_out += 1
    raise ServerBusy(f"the request took longer than {service.settings.request_timeout_s:g} s (request time limit); "
                     "retry later or send a smaller image")


async def _read(upload: UploadFile, position: int) -> tuple[str, bytes]:
    """(label, bytes) of an upload; the file name is only a label, never opened."""
    name = (upload.filename or f"upload[{position}]")[:MAX_NAME_CHARS]
    return name, await upload.read()


def _static(name: str) -> bytes:
    return resources.files("deepfever.serve").joinpath("static", name).read_bytes()


def create_app(service: ExpressionService) -> FastAPI:
    """The ASGI application serving ``service`` (started by the caller, who also closes it)."""
    app = FastAPI(title="DeepFEVER", version=__version__, docs_url=None, redoc_url=None,
                  description="Expression vectors and emotions for faces in uploaded images. Limits: see GET /v1/health.")
    app.add_middleware(EdgeLimits, service=service)
    pages = {name: (_static(name), media) for name, media in STATIC_FILES.items()}  # read once: no file access per request

    @app.exception_handler(ClientInputError)
    async def client_error(_: Request, error: ClientInputError) -> JSONResponse:
        service.counters_.refused_input += 1
        return JSONResponse({"detail": error.reason, "failures": error.failures}, status_code=error.status)

    @app.exception_handler(ServerBusy)
    async def busy(_: Request, error: ServerBusy) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(ClientGone)
    async def gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; nginx's code for "client closed request"

    async def analyse_each(uploads: list[tuple[str, bytes]], faces: list[int | None], cancelled: threading.Event) -> list[Analysis]:
        return list(await asyncio.gather(*(service.analyse(data, name, cancelled, face) for (name, data), face in zip(uploads, faces))))

    async def chosen_faces(request: Request, files: list[UploadFile], faces: list[int]) -> list[Analysis]:
        uploads = [await _read(upload, position) for position, upload in enumerate(files)]
        return await _guarded(request, service, lambda cancelled: analyse_each(uploads, faces, cancelled))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Response:
        return Response(pages["index.html"][0], media_type=pages["index.html"][1])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> Response:
        return Response(pages["docs.html"][0], media_type=pages["docs.html"][1])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in pages:
            return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
        return Response(pages[name][0], media_type=pages[name][1], headers={"Cache-Control": "no-cache"})

    @app.get("/v1/health", summary="Model fingerprint, detector, uptime, limits and counters")
    async def health() -> JSONResponse:
        return JSONResponse(service.health())

    @app.post("/v1/extract", summary="Every face of one or more images: the rows `deepfever extract` writes")
    async def extract(request: Request, images: list[UploadFile] = File(..., description="image files (field name `images`, repeatable)")) -> JSONResponse:
        if len(images) > service.settings.max_files:
            raise ClientInputError(413, f"extract: {len(images)} images in one request exceeds the limit of "
                                        f"{service.settings.max_files} (--max-files); split them over several requests")
        uploads = [await _read(upload, position) for position, upload in enumerate(images)]

        async def work(cancelled: threading.Event) -> list[Analysis | ClientInputError]:
            attempts = (service.analyse(data, name, cancelled) for name, data in uploads)
            return list(await asyncio.gather(*attempts, return_exceptions=True))

        outcomes = await _guarded(request, service, work)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, ClientInputError):
                raise outcome
        failures = [{"path": name, "reason": outcome.reason, "status": outcome.status}
                    for (name, _), outcome in zip(uploads, outcomes) if isinstance(outcome, ClientInputError)]
        analyses = [outcome for outcome in outcomes if isinstance(outcome, Analysis)]
        if not analyses:
            raise ClientInputError(max(failure["status"] for failure in failures),
                                   "; ".join(failure["reason"] for failure in failures), failures)
        failures += [{"path": analysis.name, "reason": "no face detected", "status": 200} for analysis in analyses if not analysis.rows]
        return JSONResponse({
            "images": [{"path": a.name, "width": a.width, "height": a.height, "faces": len(a.rows)} for a in analyses],
            "rows": [row for analysis in analyses for row in analysis.rows], "failures": failures,
        })

    @app.post("/v1/compare", summary="Expression distance of a face in each of two images, with its percentile")
    async def compare(request: Request, a: UploadFile = File(...), b: UploadFile = File(...),
                      face_a: int = Form(0), face_b: int = Form(0)) -> JSONResponse:
        return JSONResponse(service.compare(*await chosen_faces(request, [a, b], [face_a, face_b])))

    @app.post("/v1/odd-one-out", summary="Which of three faces has the expression least like the other two")
    async def odd_one_out(request: Request, a: UploadFile = File(...), b: UploadFile = File(...), c: UploadFile = File(...),
                          face_a: int = Form(0), face_b: int = Form(0), face_c: int = Form(0),
                          temperature: float = Form(ODD_ONE_OUT_TEMPERATURE)) -> JSONResponse:
        if not temperature > 0:
            raise ClientInputError(422, f"odd-one-out: temperature must be positive, got {temperature}")
        analyses = await chosen_faces(request, [a, b, c], [face_a, face_b, face_c])
        return JSONResponse(service.odd_one_out(analyses, temperature))

    @app.post("/v1/search", summary="The indexed faces whose expression is nearest a face of the image")
    async def search(request: Request, image: UploadFile = File(...), face: int = Form(0), k: int = Form(10)) -> JSONResponse:
        if not 1 <= k <= MAX_SEARCH_K:
            raise ClientInputError(422, f"search: k must be between 1 and {MAX_SEARCH_K}, got {k}")
        service.require_index()  # before any work: a server without an index answers 409 at once
        (query,) = await chosen_faces(request, [image], [face])
        return JSONResponse({"query": query.rows[0], "results": service.search(query, k)})

    @app.get("/v1/index/thumbnails/{row}", summary="JPEG thumbnail of an indexed face", response_class=Response)
    async def thumbnail(row: int) -> Response:
        return Response(await service.thumbnail(row), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app

