"""Run the app with uvicorn: one process, one event loop, the model shared by every request."""
from __future__ import annotations

import logging

from deepfever.serve._service import ExpressionService
from deepfever.serve.app import create_app

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_server(service: ExpressionService, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """A ``uvicorn.Server`` for ``service`` (already started); ``port=0`` lets the system pick a free port."""
    import uvicorn

    if host not in LOOPBACK:
        logger.warning("serve: listening on %s, so anyone who can reach this machine can send it images", host)
    config = uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level, access_log=False,
                            timeout_keep_alive=5, lifespan="off")
    return uvicorn.Server(config)


def run_server(service: ExpressionService, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C), then finish the queued work and stop the service's threads."""
    try:
        create_server(service, host, port, log_level).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the shutdown was already clean
        logger.info("serve: stopped")
    finally:
        service.close()
