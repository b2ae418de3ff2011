"""``deepfever serve``: the extractor behind an HTTP API (``/v1``) and a web page (``/``)."""
from __future__ import annotations

import argparse

from deepfever.cli._common import add_extractor_arguments, build_extractor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="HTTP API and web page for expression vectors (needs the 'serve' extra)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--index", help="index folder from 'deepfever index build', for /v1/search and the page's grid")
    parser.add_argument("--reference", help="face images or a FER+ root whose random pairs give compare a percentile "
                                            "(default: faces of the index)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default 20)")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image in pixels (default 40,000,000)")
    parser.add_argument("--max-files", type=int, default=16, help="most images per /v1/extract request (default 16)")
    parser.add_argument("--workers", type=int, default=2,
                        help="threads that decode, detect and align (default 2); one process and one model either way")
    parser.add_argument("--max-concurrency", type=int, default=32,
                        help="requests worked on at once, counted once their body has arrived; more get 503 with "
                             "Retry-After (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a face waits for other requests' faces to share a forward pass (default 5)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds before a request is abandoned with 503 (default 30)")
    parser.add_argument("--body-timeout", type=float, default=30.0,
                        help="seconds a request body may take to arrive, counted from its headers; slower gets 408 (default 30)")
    parser.add_argument("--header-timeout", type=float, default=10.0,
                        help="seconds a request line and headers may take; slower connections are closed (default 10)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a name clients may use in the Host header besides the --host address and localhost "
                             "(repeatable; others get 400, which stops DNS rebinding; '*' accepts any)")
    parser.add_argument("--absolute-paths", action="store_true",
                        help="search results name indexed files by absolute path (default: relative to the index root)")
    add_extractor_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from deepfever.serve import ExpressionService, ServeSettings, run_server
    except ImportError as error:
        raise ValueError(f"serve needs FastAPI and uvicorn ({error}); install them with: pip install 'deepfever[serve]'") from error

    extractor = build_extractor(args)
    settings = ServeSettings(
        model=str(extractor.model), detector=extractor.detector, device=extractor.device, prior=extractor.prior, index=args.index,
        reference=args.reference, max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, max_files=args.max_files,
        workers=args.workers, max_concurrency=args.max_concurrency, max_wait_ms=args.max_wait_ms,
        batch_size=extractor.batch_size, request_timeout_s=args.request_timeout, body_timeout_s=args.body_timeout,
        header_timeout_s=args.header_timeout, allowed_hosts=tuple(args.allowed_host), absolute_paths=args.absolute_paths,
    )
    service = ExpressionService(settings, extractor).load()  # a bad index or reference is one line here, before serving
    uvicorn_level = "error" if args.quiet else "debug" if args.verbose else "info"
    run_server(service, args.host, args.port, uvicorn_level)  # logs the page's address (the bound port) once listening
    return 0
