"""Limits enforced at the edge, before a request costs the server more than a connection and its bytes.

Order of events for a POST: headers (``_server``'s header deadline) → ``BodyLimits`` reads the body
within ``body_timeout_s`` and under the size limit and the shared byte budget → the form is parsed in
memory (``InMemoryFormRoute``) → a work slot is taken (``Admission``, through the ``work_slot``
dependency) → the work runs under ``request_timeout_s``. A client that drips its body therefore holds
no work slot: 32 of them cost 32 connections and the few bytes they sent, and are cut off at the deadline.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepfever.serve._service import ExpressionService

RETRY_AFTER_S = 1


class ServerBusy(Exception):
    """The server cannot take this request now (no work slot, memory budget or time left); the client may retry."""


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class Admission:
    """At most ``limit`` requests worked on at once; one more is refused at once (503), never queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


class BodyLimits:
    """ASGI middleware for POST bodies: size limit, read deadline and a byte budget shared by all bodies.

    A declared ``Content-Length`` over the limit is refused before one byte of the body is read; a
    body that streams past it is cut off where it crosses it (413). The whole body must arrive within
    ``body_timeout_s`` of the headers (408, connection closed). Bodies being read or held by requests
    in progress together stay under ``settings.body_budget_bytes`` (503): memory is bounded however many
    clients upload at once, and a slow uploader holds only the bytes it has sent.
    """

    def __init__(self, app: ASGIApp, service: ExpressionService) -> None:
        self.app = app
        self.service = service
        self.buffered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        settings = self.service.settings
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            self.service.counters_.refused_input += 1
            response = _json_error(413, f"request body of {int(declared):,} bytes exceeds the limit of {settings.max_body_bytes:,} "
                                        f"bytes (--max-upload-mb {settings.max_upload_mb:g}); send smaller images")
            await response(scope, receive, send)
            return
        body = _LimitedBody(self, receive)
        try:
            await self.app(scope, body.receive, send)
        finally:
            self.buffered -= body.held


class _LimitedBody:
    """The ``receive`` of one POST while its body arrives; afterwards it only passes ``http.disconnect`` on."""

    def __init__(self, limits: BodyLimits, receive: Receive) -> None:
        self.limits = limits
        self.upstream = receive
        self.deadline = asyncio.get_running_loop().time() + limits.service.settings.body_timeout_s
        self.held = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:
            return await self.upstream()
        service = self.limits.service
        settings, counters = service.settings, service.counters_
        try:
            # Exceptions raised here surface from FastAPI's form parsing unchanged and become the answer.
            message = await asyncio.wait_for(self.upstream(), max(0.0, self.deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            counters.slow_bodies += 1
            raise HTTPException(408, f"the request body did not arrive within {settings.body_timeout_s:g} s (--body-timeout); "
                                     "send it faster or raise the limit", headers={"Connection": "close"}) from None
        if message["type"] != "http.request":
            return message
        size = len(message.get("body", b""))
        if self.held + size > settings.max_body_bytes:
            counters.refused_input += 1
            raise HTTPException(413, f"request body exceeds the limit of {settings.max_body_bytes:,} bytes "
                                     f"(--max-upload-mb {settings.max_upload_mb:g}); send smaller images", headers={"Connection": "close"})
        if self.limits.buffered + size > settings.body_budget_bytes:
            counters.refused_busy += 1
            raise HTTPException(503, f"server busy: {self.limits.buffered:,} bytes of uploads held (--max-concurrency × "
                                     f"--max-upload-mb); retry after {RETRY_AFTER_S} s", headers={"Retry-After": str(RETRY_AFTER_S)})
        self.limits.buffered += size
        self.held += size
        self.complete = not message.get("more_body", False)
        return message


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _InMemoryFormRequest(Request):
    """A request whose multipart body is parsed into memory.

    Starlette spools every uploaded part over 1 MB to a temporary file; uploads are faces, and the
    server promises they never touch disk. Bodies are bounded by ``BodyLimits``, so memory is too.
    """

    async def form(self, *, max_files: int | float = 1000, max_fields: int | float = 1000,  # type: ignore[override]
                   max_part_size: int = 1024 * 1024) -> FormData:
        if self.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            return await super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
        parser = MultiPartParser(self.headers, self.stream(), max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
        parser.spool_max_size = self.app.state.service.settings.max_body_bytes + 1  # no part can be larger than its body
        try:
            return await parser.parse()
        except MultiPartException as error:
            raise HTTPException(400, error.message) from error


class InMemoryFormRoute(APIRoute):
    """Route class (FastAPI's custom-request pattern) whose endpoints read uploads in memory only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_memory_handler(request: Request) -> Response:
            return await handler(_InMemoryFormRequest(request.scope, request.receive))

        return in_memory_handler
