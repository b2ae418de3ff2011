"""Helpers for the tutorials executed at build time: where to write, where the data is, how to show results.

Everything a tutorial prints becomes Markdown on the page, so tables and figures are printed as
Markdown tables and inline PNG images (the built site needs no extra files).
"""
from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd


def _page_print(*args: Any, **kwargs: Any) -> None:
    """Print onto the page: markdown-exec captures a block's output through the ``print`` it puts in the
    block's globals, so the helpers print with their caller's ``print``, not the built-in one."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    (frame.f_globals.get("print", print) if frame is not None else print)(*args, **kwargs)


def data_dir(*parts: str) -> Path:
    """A path under the public data folder (``DEEPFEVER_DATA``); stops the build if it is missing."""
    path = Path(os.environ["DEEPFEVER_DATA"]).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"docs: {path} is missing; set DEEPFEVER_DATA to the folder holding photos/, video/, ckplus48/, ferplus/")
    return path


def work_dir(name: str) -> Path:
    """A fresh folder for one tutorial under the build's scratch folder (``DEEPFEVER_DOCS_WORK``)."""
    path = Path(os.environ["DEEPFEVER_DOCS_WORK"]) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def show_image(path: str | os.PathLike, width: int | None = None, alt: str = "") -> None:
    """Print an image inline (base64), so the page carries the figure the tutorial just made."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    kind = Path(path).suffix.lstrip(".").lower().replace("jpg", "jpeg")
    size = f' width="{width}"' if width else ""
    _page_print(f'\n<img alt="{alt or Path(path).name}" src="data:image/{kind};base64,{data}"{size}>\n')


def show_table(frame: pd.DataFrame, rows: int = 10, digits: int = 3) -> None:
    """Print the first ``rows`` rows as a Markdown table (floats rounded, long cells shortened)."""
    head = frame.head(rows)
    _page_print()
    _page_print("| " + " | ".join(str(column) for column in head.columns) + " |")
    _page_print("|" + "---|" * len(head.columns))
    for _, row in head.iterrows():
        _page_print("| " + " | ".join(_cell(value, digits) for value in row) + " |")
    if len(frame) > rows:
        _page_print(f"\n*{rows} of {len(frame)} rows shown.*")
    _page_print()


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    text = str(value)
    if hasattr(value, "__len__") and not isinstance(value, str) and len(value) > 4:
        text = "[" + ", ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in list(value)[:3]) + f", … ({len(value)})]"
    return text.replace("|", "\\|").replace("\n", " ")


def run_cli(arguments: str | Sequence[str], shown: str | None = None) -> str:
    """Run ``deepfever ARGS`` with this Python, print the command and its output; fail the build on a non-zero exit."""
    argv = shlex.split(arguments) if isinstance(arguments, str) else list(arguments)
    done = subprocess.run([sys.executable, "-m", "deepfever", *argv], capture_output=True, text=True)
    output = tidy((done.stderr + done.stdout).strip())  # logs (stderr) come before the closing "wrote ..." lines
    command = shown or tidy("deepfever " + " ".join(shlex.quote(a) for a in argv))
    _page_print(f"\n```console\n$ {command}\n{output}\n```\n")
    if done.returncode != 0:
        raise RuntimeError(f"deepfever {' '.join(argv)} exited {done.returncode}:\n{output}")
    return output


_LIBRARY_NOISE = ("[ WARN:", "INFO faiss.loader", "ModuleNotFoundError(\"No module named 'faiss.swigfaiss")
"""Lines other libraries print (OpenCV's DNN notice, FAISS probing for CPU features) that say nothing about DeepFEVER."""


def tidy(text: str) -> str:
    """Shorten the build's scratch and data folders to ``work/`` and ``$DATA/``; keep a progress bar's last state."""
    lines = (line.split("\r")[-1] for line in text.splitlines())
    text = "\n".join(line for line in lines if not line.startswith(_LIBRARY_NOISE))
    return (text.replace(os.environ["DEEPFEVER_DOCS_WORK"] + "/", "work/")
            .replace(os.environ["DEEPFEVER_DATA"], "$DATA"))


RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def result(name: str) -> dict[str, Any]:
    """A measured result file, ``benchmarks/results/NAME.json``: pages quote these, never copies of them."""
    import json

    return json.loads((RESULTS / f"{name}.json").read_text())


def pct(value: float, digits: int = 1) -> str:
    """A fraction as a percentage string: 0.8634 -> '86.3 %'."""
    return f"{100 * value:.{digits}f} %"
