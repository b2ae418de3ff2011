"""``fetch_fec`` against a local HTTP server (127.0.0.1 only) that misbehaves in every way we handle."""
from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from deepfever.cli import main
from deepfever.data.fec_fetch import REPORT_NAME, SUMMARY_NAME, FetchFailure, FetchSettings, crop_face, download, fetch_fec, parse_size
from deepfever.data.formats import read_dataset
from deepfever.data.formats.fec import FecFace, fec_face_stem
from fixtures_data import fec_face, fec_row, write_fec_csv

SLOW_SECONDS = 0.8
SETTINGS = FetchSettings(workers=4, timeout=0.25, total_timeout=5.0, retries=2, backoff=0.01, max_bytes=20_000)


def gradient(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth image, so JPEG round trips stay close to the source."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([(xs * 2 + seed * 40) % 256, (ys * 3) % 256, ((xs + ys) + seed * 10) % 256], axis=2).astype(np.uint8)


def encode(array: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


SOURCES = {f"/img/{seed}.jpg": gradient(100, 80, seed) for seed in (1, 2, 3)}
RGBA = np.dstack([gradient(60, 40, 4), np.full((40, 60), 128, np.uint8)])
BODIES = {path: encode(array, "JPEG") for path, array in SOURCES.items()}
BODIES["/alpha.png"] = encode(RGBA, "PNG")
BODIES["/corrupt.jpg"] = BODIES["/img/1.jpg"][: len(BODIES["/img/1.jpg"]) // 2]
BODIES["/text.jpg"] = b"<html>Sorry, this photo is no longer available</html>"
BODIES["/big.jpg"] = b"\xff" * 50_000


class Handler(BaseHTTPRequestHandler):
    """Serves BODIES plus a 404, a slow, a flaky (500 then OK), an always-500 and an unsized-big path."""

    requests: Counter = Counter()
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.lock:
            self.requests[self.path] += 1
            count = self.requests[self.path]
        try:
            if self.path == "/slow.jpg":
                threading.Event().wait(SLOW_SECONDS)
                self._send(200, BODIES["/img/1.jpg"])
            elif self.path == "/flaky.jpg":
                self._send(500, b"try again") if count == 1 else self._send(200, BODIES["/img/2.jpg"])
            elif self.path == "/always500.jpg":
                self._send(500, b"broken")
            elif self.path == "/big-unsized.jpg":
                self.send_response(200)
                self.end_headers()  # no Content-Length: the body ends when the connection closes
                self.wfile.write(b"\xff" * 50_000)
            elif self.path in BODIES:
                self._send(200, BODIES[self.path])
            else:
                self._send(404, b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, size limit), as intended

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, Counter]]:
    Handler.requests = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


BOX_A, BOX_D, FULL = (0.1, 0.2, 0.5, 0.6), (0.5, 0.5, 0.9, 0.9), (0.0, 0.0, 1.0, 1.0)


def write_triplets(path: Path, base: str) -> Path:
    """Five triplets over 13 unique faces; /img/1.jpg holds two faces and /img/2.jpg is used twice."""
    def face(name: str, box: tuple[float, float, float, float] = FULL) -> list[str]:
        return fec_face(base + name, box)

    rows = [
        [face("/img/1.jpg", BOX_A), face("/img/2.jpg"), face("/img/3.jpg")],
        [face("/img/1.jpg", BOX_D), face("/missing.jpg"), face("/slow.jpg")],
        [face("/corrupt.jpg"), face("/text.jpg"), face("/big.jpg")],
        [face("/big-unsized.jpg"), face("/flaky.jpg"), face("/always500.jpg")],
        [face("/alpha.png"), face("/img/2.jpg"), face("/img/1.jpg", BOX_A)],
    ]
    return write_fec_csv(path, [fec_row(faces, "ONE_CLASS_TRIPLET", [1, 1, 2, 1, 1, 3]) for faces in rows])


EXPECTED_FAILED = {"http 404": 1, "timeout": 1, "corrupt image": 1, "not an image": 1, "too large": 2, "http 500": 1}


def test_fetch_fec_outcomes_crops_report_and_resume(server: tuple[str, Counter], tmp_path: Path) -> None:
    base, requests = server
    csv_path = write_triplets(tmp_path / "faceexp-comparison-data-test-public.csv", base)
    summary = fetch_fec(csv_path, tmp_path, SETTINGS)

    assert (summary.faces, summary.ok, summary.skipped_existing) == (13, 6, 0)
    assert dict(summary.failed) == EXPECTED_FAILED
    assert requests["/img/1.jpg"] == 1 and requests["/img/2.jpg"] == 1  # one download per photo
    assert requests["/missing.jpg"] == 1  # 404 is not retried
    assert requests["/always500.jpg"] == 3 and requests["/flaky.jpg"] == 2 and requests["/slow.jpg"] == 3

    face_a = FecFace(base + "/img/1.jpg", BOX_A)
    with Image.open(tmp_path / "images" / (fec_face_stem(face_a) + ".jpg")) as saved:
        crop = np.asarray(saved)
    expected = SOURCES["/img/1.jpg"][16:48, 10:50]
    assert crop.shape == expected.shape
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 8
    files = sorted(path.name for path in (tmp_path / "images").iterdir())
    assert len(files) == 6 and all(name.endswith(".jpg") and not name.startswith(".") for name in files)

    with open(tmp_path / REPORT_NAME, newline="") as handle:
        report = list(csv.DictReader(handle))
    assert Counter(row["reason"] for row in report) == Counter(EXPECTED_FAILED)
    assert {row["url"] for row in report if row["reason"] == "http 404"} == {base + "/missing.jpg"}
    assert json.loads((tmp_path / SUMMARY_NAME).read_text())["failed"] == EXPECTED_FAILED
    assert len(read_dataset("fec", str(tmp_path))["test"].samples) == 6

    before = Counter(requests)
    again = fetch_fec(csv_path, tmp_path, SETTINGS)
    assert (again.ok, again.skipped_existing) == (0, 6)
    for path in ("/img/1.jpg", "/img/2.jpg", "/img/3.jpg", "/alpha.png"):
        assert requests[path] == before[path], f"{path} was downloaded again"


def test_interrupted_save_leaves_no_file(server: tuple[str, Counter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    write_fec_csv(tmp_path / "one.csv", [fec_row([fec_face(base + "/img/1.jpg", FULL)] * 3, "ONE_CLASS_TRIPLET", [1] * 6)])

    def crash(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\xff\xd8half a jpeg")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        fetch_fec(tmp_path / "one.csv", tmp_path, SETTINGS)
    assert list((tmp_path / "images").iterdir()) == []


def test_cli_fetch_fec_with_limit(server: tuple[str, Counter], tmp_path: Path) -> None:
    base, requests = server
    csv_path = write_triplets(tmp_path / "fec.csv", base)
    argv = ["data", "fetch-fec", "--csv", str(csv_path), "--out", str(tmp_path / "out"), "--workers", "2",
            "--timeout", "0.5", "--max-bytes", "20KB", "--limit", "1", "--image-format", "png"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / SUMMARY_NAME).read_text())
    assert (summary["triplets"], summary["faces"], summary["ok"], summary["failed"]) == (1, 3, 3, {})
    assert all(path.suffix == ".png" for path in (tmp_path / "out" / "images").iterdir())
    assert set(requests) == {"/img/1.jpg", "/img/2.jpg", "/img/3.jpg"}


def test_download_refuses_other_schemes() -> None:
    with pytest.raises(FetchFailure, match="unsupported url"):
        download("file:///etc/passwd", SETTINGS)


def test_parse_size_and_crop_rounding() -> None:
    assert parse_size("20MB") == 20 << 20 and parse_size("500kb") == 500 << 10 and parse_size("1048576") == 1 << 20
    assert parse_size("1.5 MiB") == int(1.5 * (1 << 20))
    with pytest.raises(ValueError, match="expected a size such as"):
        parse_size("lots")
    image = np.zeros((10, 20, 3), np.uint8)
    assert crop_face(image, (0.12, 0.15, 0.5, 1.0)).shape == (9, 8, 3)
    with pytest.raises(ValueError, match="extension must be one of"):
        FetchSettings(extension=".gif")
