"""Run the app with uvicorn: one process, one event loop, the model shared by every request."""
from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from deepfever.serve._service import ExpressionService
from deepfever.serve.app import LOOPBACK_HOSTS, WILDCARD_ADDRESSES, create_app

logger = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request line and its headers.

    uvicorn times out idle keep-alive connections but not a request whose headers arrive one byte at
    a time; here the clock starts when a connection opens or the next request's first byte arrives,
    and a request still without complete headers after ``header_timeout_s`` has its connection closed.
    """

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            self._arm_header_deadline()
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            logger.debug("serve: closed a connection whose request headers took over %g s", self.header_timeout_s)
            self.transport.close()


class ExpressionServer(uvicorn.Server):
    """A ``uvicorn.Server`` that logs where the page is once the socket is bound (``port=0``: the port it got)."""

    @property
    def port(self) -> int:
        """The bound port (after startup)."""
        return self.servers[0].sockets[0].getsockname()[1]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            service: ExpressionService = self.config.app.state.service
            host = self.config.host
            shown = f"[{host}]" if ":" in host else host
            logger.info("serve: model %s, detector %s, index %s; page at http://%s:%d/", service.extractor_.fingerprint_["model_id"],
                        service.settings.detector, service.settings.index or "none", shown, self.port)


def create_server(service: ExpressionService, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> ExpressionServer:
    """A server for ``service`` (its lifespan starts and closes the service); ``port=0`` picks a free port."""
    if host not in (*LOOPBACK_HOSTS, "::1"):
        logger.warning("serve: listening on %s, so anyone who can reach this machine can send it images", host)
    if host in WILDCARD_ADDRESSES and not service.settings.allowed_hosts:
        logger.warning("serve: listening on every address (%s) but only loopback names are accepted in the Host header; "
                       "name the ones clients use with --allowed-host", host or "all")
    protocol = type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": service.settings.header_timeout_s})
    config = uvicorn.Config(create_app(service, host), host=host, port=port, log_level=log_level, access_log=False,
                            timeout_keep_alive=5, lifespan="on", http=protocol, ws="none")
    return ExpressionServer(config)


def run_server(service: ExpressionService, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C); the lifespan finishes the queued work and stops the service's threads."""
    try:
        create_server(service, host, port, log_level).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the shutdown was already clean
        logger.info("serve: stopped")
