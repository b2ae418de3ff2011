"""MkDocs hooks: give executed tutorials a scratch folder and the data folder, and make the helpers importable.

Tutorials (markdown-exec blocks) run inside the ``mkdocs build`` process. They write only under
``DEEPFEVER_DOCS_WORK`` (a fresh temporary folder per build unless set), never into the repository,
and read the public data from ``DEEPFEVER_DATA`` (default: ``../shared/data`` beside the repository).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_CREATED = [""]  # the scratch folder this build made (removed after the build), if it made one
_STARTED: dict[str, float] = {}
log = logging.getLogger("mkdocs.hooks.deepfever")
REPO = HERE.parents[1]


def on_config(config, **kwargs):
    """Runs once before any page: set the folders the tutorials use."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    src = REPO / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    os.environ.setdefault("DEEPFEVER_DATA", str((REPO.parent / "shared" / "data").resolve()))
    if not os.environ.get("DEEPFEVER_DOCS_WORK"):
        os.environ["DEEPFEVER_DOCS_WORK"] = _CREATED[0] = tempfile.mkdtemp(prefix="deepfever-docs-")
    # Subprocesses started by tutorials (the CLI, the server) import this checkout's package too.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH", "")]))
    return config


def on_post_build(config, **kwargs):
    """Remove the scratch folder this build created; one given in ``DEEPFEVER_DOCS_WORK`` is left alone."""
    if _CREATED[0]:
        shutil.rmtree(_CREATED[0], ignore_errors=True)
        os.environ.pop("DEEPFEVER_DOCS_WORK", None)
        _CREATED[0] = ""


def on_page_markdown(markdown, page, **kwargs):
    """Note when a page starts rendering; its executed blocks run between this and ``on_page_content``."""
    _STARTED[page.file.src_uri] = time.perf_counter()
    return markdown


def on_page_content(html, page, **kwargs):
    """Log the pages that took long to render (their executed blocks), so slow tutorials are visible."""
    seconds = time.perf_counter() - _STARTED.pop(page.file.src_uri, time.perf_counter())
    if seconds >= 1:
        log.info("docs: %s rendered in %.1f s", page.file.src_uri, seconds)
    return html
