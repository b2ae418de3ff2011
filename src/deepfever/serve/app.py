"""The HTTP layer: FastAPI routers over an ``ExpressionService``, limits enforced at the edge.

Routes (versioned under ``/v1``): ``POST extract``, ``compare``, ``odd-one-out``, ``search``,
``GET health``, ``GET index/thumbnails/{row}``; the page at ``/`` and a self-contained API
reference at ``/docs`` (no CDN: the machine may be offline). The ``Host`` header must name the
bound address, loopback or a name given in ``allowed_hosts`` (400 otherwise: DNS rebinding). A
body over the size limit is a 413 before it is read; one that arrives too slowly a 408; a request
that finds no work slot once its body is in, a 503 with ``Retry-After``.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from deepfever._version import __version__
from deepfever.serve._edge import RETRY_AFTER_S, Admission, BodyLimits, ClientGone, ServerBusy
from deepfever.serve._service import ExpressionService
from deepfever.serve._uploads import ClientInputError
from deepfever.serve.routers import analysis, health, page, search

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


def trusted_hosts(bound_host: str, allowed_hosts: tuple[str, ...] = ()) -> list[str]:
    """Names a ``Host`` header may carry: loopback, the bound address (unless a wildcard) and ``allowed_hosts``."""
    bound = [] if bound_host in WILDCARD_ADDRESSES else [f"[{bound_host}]" if ":" in bound_host else bound_host]
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *bound, *(host.lower() for host in allowed_hosts)]))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the service's threads (loading the model if the caller has not) and stop them at shutdown."""
    service: ExpressionService = app.state.service
    service.start()
    try:
        yield
    finally:
        service.close()


async def client_error(request: Request, error: ClientInputError) -> JSONResponse:
    request.app.state.service.counters_.refused_input += 1
    return JSONResponse({"detail": error.reason, "failures": error.failures}, status_code=error.status)


async def busy(_: Request, error: ServerBusy) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def gone(_: Request, __: ClientGone) -> Response:
    return Response(status_code=499)  # nobody reads it; nginx's code for "client closed request"


async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without echoing the input back (for a form that is the uploaded files' internals)."""
    request.app.state.service.counters_.refused_input += 1
    return JSONResponse({"detail": [{key: value for key, value in problem.items() if key not in ("input", "ctx")}
                                    for problem in error.errors()]}, status_code=422)


def create_app(service: ExpressionService, bound_host: str = "127.0.0.1") -> FastAPI:
    """The ASGI application serving ``service``; its lifespan starts the service and closes it.

    Args:
        service: the pipeline; it may be loaded already (``service.load()``), it is started here.
        bound_host: the address the server listens on, accepted in the ``Host`` header.
    """
    app = FastAPI(title="DeepFEVER", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Expression vectors and emotions for faces in uploaded images. Limits: see GET /v1/health.")
    app.state.service = service
    app.state.admission = Admission(service.settings.max_concurrency)
    app.add_middleware(BodyLimits, service=service)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(bound_host, service.settings.allowed_hosts),
                       www_redirect=False)  # added last: the outermost check, before any limit is counted
    app.add_exception_handler(ClientInputError, client_error)
    app.add_exception_handler(ServerBusy, busy)
    app.add_exception_handler(ClientGone, gone)
    app.add_exception_handler(RequestValidationError, invalid)
    for router in (analysis.router, search.router, health.router, page.router):
        app.include_router(router)
    return app
