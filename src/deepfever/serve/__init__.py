"""``deepfever serve``: the Extractor behind an HTTP API and a web page (needs the ``serve`` extra).

Example:
    >>> from deepfever.serve import ExpressionService, ServeSettings, run_server  # doctest: +SKIP
    >>> run_server(ExpressionService(ServeSettings(index="faces.index")).load(), "127.0.0.1", 8000)  # doctest: +SKIP
"""
from deepfever.serve._batching import MicroBatcher
from deepfever.serve._server import create_server, run_server
from deepfever.serve._service import ExpressionService, ServeSettings
from deepfever.serve._uploads import ClientInputError, decode_upload
from deepfever.serve.app import create_app

__all__ = ["ClientInputError", "ExpressionService", "MicroBatcher", "ServeSettings", "create_app", "create_server",
           "decode_upload", "run_server"]
