"""``deepfever serve``: batching queue, upload checks, and the HTTP API against a live loopback server."""
from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn, python-multipart) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is needed to call the server")

from conftest import write_random_crops  # noqa: E402
from deepfever import Extractor  # noqa: E402
from deepfever.serve import ClientInputError, ExpressionService, MicroBatcher, ServeSettings, create_server, decode_upload  # noqa: E402

STATIC = Path(__file__).resolve().parents[2] / "src" / "deepfever" / "serve" / "static"


@contextmanager
def running_server(settings: ServeSettings, extractor: Extractor | None = None) -> Iterator[tuple[str, ExpressionService]]:
    """A real uvicorn server for ``settings`` on a free loopback port, in a background thread."""
    service = ExpressionService(settings, extractor)
    server = create_server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.port}", service
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: building one costs ~0.5 s (it loads the CA bundle)."""
    with httpx.Client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def tiny_extractor(tiny_model_file) -> Extractor:
    """A random-init model with detector ``none``: every upload is one face, so tests need no photos."""
    return Extractor(model=str(tiny_model_file), detector="none", batch_size=16).load()


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    return write_random_crops(tmp_path_factory.mktemp("crops"), 6, "crop")


def tiny_settings(tiny_model_file, **overrides) -> ServeSettings:
    return ServeSettings(**{"model": str(tiny_model_file), "detector": "none", **overrides})


# -- the batching queue --------------------------------------------------------------------
def test_micro_batcher_shares_one_batch_among_waiting_jobs_and_splits_results():
    release, calls = threading.Event(), []

    def predict(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(batch))
        release.wait(5)
        return {"id": batch[:, 0, 0, 0].astype(np.int64)}

    batcher = MicroBatcher(predict, max_wait_s=0.0, max_batch=64).start()
    first = batcher.submit(np.zeros((1, 2, 2, 3), np.uint8))
    wait_until(lambda: calls == [1], "the first batch to start")
    # While the model is busy with the first batch, five jobs (1 + 2 + 3 + 4 + 5 crops) queue up.
    jobs = [batcher.submit(np.full((size, 2, 2, 3), size, np.uint8)) for size in range(1, 6)]
    release.set()
    assert first.result(5)["id"].tolist() == [0]
    for size, job in enumerate(jobs, start=1):
        assert job.result(5)["id"].tolist() == [size] * size
    batcher.close()
    assert calls == [1, 15]
    assert batcher.stats.as_dict()["mean_batch"] == 8.0


def test_micro_batcher_skips_cancelled_jobs_and_reports_failures_to_each_job():
    gate = threading.Event()

    def predict(batch: np.ndarray) -> dict[str, np.ndarray]:
        gate.wait(5)
        if batch.max() == 9:
            raise RuntimeError("model exploded")
        return {"n": np.arange(len(batch))}

    batcher = MicroBatcher(predict, max_wait_s=0.0).start()
    blocker = batcher.submit(np.zeros((1, 1, 1, 3), np.uint8))
    gone = threading.Event()
    skipped = batcher.submit(np.zeros((1, 1, 1, 3), np.uint8), cancelled=gone)
    gone.set()
    gate.set()
    blocker.result(5)
    wait_until(lambda: skipped.cancelled(), "the cancelled job to be dropped")
    assert batcher.stats.skipped_jobs == 1
    failing = [batcher.submit(np.full((1, 1, 1, 3), 9, np.uint8)) for _ in range(2)]
    for job in failing:
        with pytest.raises(RuntimeError, match="model exploded"):
            job.result(5)
    assert batcher.submit(np.zeros((2, 1, 1, 3), np.uint8)).result(5)["n"].tolist() == [0, 1]  # the worker lives on
    batcher.close()


# -- uploads -------------------------------------------------------------------------------
def test_decode_upload_answers_each_kind_of_bad_image_with_its_status():
    good = png_bytes(np.full((40, 30, 3), 200, np.uint8))
    assert decode_upload(good, "ok.png", 10_000).shape == (40, 30, 3)
    cases = {b"": (422, r"empty \(0 bytes\)"), b"%PDF-1.4 not an image": (415, "not a readable image"),
             good[: len(good) // 2]: (422, "corrupt or truncated")}
    for data, (status, reason) in cases.items():
        with pytest.raises(ClientInputError, match=reason) as caught:
            decode_upload(data, "x.png", 10_000)
        assert caught.value.status == status and caught.value.reason.startswith("x.png: ")
    with pytest.raises(ClientInputError, match="30x40 pixels exceeds the limit of 1,000") as caught:
        decode_upload(good, "big.png", 1_000)
    assert caught.value.status == 413


# -- the API -------------------------------------------------------------------------------
def test_settings_prior_reaches_the_extractor_the_service_builds(tiny_model_file):
    service = ExpressionService(tiny_settings(tiny_model_file, prior="train")).load()
    assert service.extractor_.prior == "train"  # the tiny model records no class prior, so "train" is its one choice
    with pytest.raises(ValueError, match="prior"):
        ExpressionService(tiny_settings(tiny_model_file, prior="sideways")).load()


def test_extract_rows_equal_offline_extract_and_bad_files_are_listed(http, tiny_model_file, tiny_extractor, crops):
    offline = tiny_extractor.extract(crops[:3]).set_index("path")
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, _):
        files = [("images", (path.name, path.read_bytes(), "image/png")) for path in crops[:3]]
        files.append(("images", ("notes.txt", b"hello", "text/plain")))
        response = http.post(f"{url}/v1/extract", files=files, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["failures"] == [{"path": "notes.txt", "reason": "notes.txt: not a readable image (UnidentifiedImageError); "
                                 "send a JPEG, PNG, WebP, BMP, TIFF or GIF file", "status": 415}]
    assert [image["path"] for image in body["images"]] == [path.name for path in crops[:3]]
    assert len(body["rows"]) == 3
    for row in body["rows"]:
        assert list(row) == tiny_extractor.columns()
        expected = offline.loc[str(next(path for path in crops if path.name == row["path"]))]
        np.testing.assert_allclose(row["embedding"], expected["embedding"], atol=1e-5)
        np.testing.assert_allclose([row["box_x2"], row["box_y2"]], [expected["box_x2"], expected["box_y2"]])
        assert row["emotion"] == expected["emotion"] and row["model_id"] == expected["model_id"]


def test_concurrent_requests_share_one_forward_pass(http, tiny_model_file, tiny_extractor, crops):
    offline = tiny_extractor.extract(crops[:4])
    # A long wait and a batch of 4: the four faces can only leave the queue together.
    settings = tiny_settings(tiny_model_file, batch_size=4, max_wait_ms=10_000)
    with running_server(settings, tiny_extractor) as (url, service):
        def send(path: Path) -> dict:
            return http.post(f"{url}/v1/extract", files={"images": (path.name, path.read_bytes(), "image/png")}, timeout=60).json()

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, crops[:4]))
        assert service.batcher_.stats.as_dict() | {"mean_batch": None} == {
            "batches": 1, "faces": 4, "largest_batch": 4, "mean_batch": None, "skipped_jobs": 0}
    for answer, expected in zip(answers, offline["embedding"]):
        np.testing.assert_allclose(answer["rows"][0]["embedding"], expected, atol=1e-5)


def test_bad_requests_get_4xx_with_the_reason(tiny_model_file, tiny_extractor, crops):
    good = crops[0].read_bytes()
    settings = tiny_settings(tiny_model_file, max_upload_mb=0.05, max_files=2, max_pixels=48 * 48)
    with running_server(settings, tiny_extractor) as (url, service), httpx.Client(base_url=url, timeout=30) as client:
        def post(files, **kwargs) -> httpx.Response:
            return client.post("/v1/extract", files=files, **kwargs)

        cases = [
            (post([("images", ("a.png", good[:200], "image/png"))]), 422, "a.png: corrupt or truncated image"),
            (post([("images", ("a.bin", b"\x00" * 300, "image/png"))]), 415, "a.bin: not a readable image"),
            (post([("images", ("big.png", png_bytes(np.zeros((49, 48, 3), np.uint8)), "image/png"))]), 413,
             "big.png: 48x49 pixels exceeds the limit of 2,304"),
            (post([("images", ("huge.png", b"\x00" * 60_000, "image/png"))]), 413, "exceeds the limit of 52,428 bytes"),
            (post([("images", (f"{i}.png", good, "image/png")) for i in range(3)]), 413, "3 images in one request exceeds the limit of 2"),
            (post([("photo", ("a.png", good, "image/png"))]), 422, "images"),
            (client.post("/v1/search", files={"image": ("a.png", good, "image/png")}), 409, "deepfever serve --index INDEX"),
            (client.post("/v1/odd-one-out", files={key: ("a.png", good, "image/png") for key in "abc"}, data={"temperature": "0"}),
             422, "greater than or equal to 0.000001"),
            (client.post("/v1/compare", files={"a": ("a.png", good, "image/png"), "b": ("b.png", good, "image/png")},
                         data={"face_b": "3"}), 422, "b.png: face 3 was asked for but the image has 1 face(s) (0..0)"),
        ]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must bite while the body streams
            yield b'--XX\r\nContent-Disposition: form-data; name="images"; filename="s.png"\r\nContent-Type: image/png\r\n\r\n'
            for _ in range(20):
                yield b"\x00" * 4096

        streamed = client.post("/v1/extract", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=XX"})
        cases.append((streamed, 413, "request body exceeds the limit of 52,428 bytes"))
        for response, status, reason in cases:
            assert response.status_code == status, (reason, response.text)
            assert reason in response.text
        # Only the compare request's two good images reached the detector; every bad upload stopped before it.
        assert service.counters_.images_detected == 2


def test_full_queue_answers_503_with_retry_after_then_recovers(http, tiny_model_file, tiny_extractor, crops):
    files = {"images": ("a.png", crops[0].read_bytes(), "image/png")}
    with running_server(tiny_settings(tiny_model_file, max_concurrency=1), tiny_extractor) as (url, service):
        with service._detect_lock:  # the one admitted request waits at the detector
            first: dict[str, httpx.Response] = {}
            sender = threading.Thread(target=lambda: first.update(r=http.post(f"{url}/v1/extract", files=files, timeout=30)))
            sender.start()
            wait_until(lambda: service.counters_.requests == 1, "the first request to be admitted")
            refused = http.post(f"{url}/v1/extract", files=files, timeout=30)
        sender.join(30)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "--max-concurrency 1" in refused.json()["detail"]
        assert first["r"].status_code == 200 and len(first["r"].json()["rows"]) == 1
        assert http.post(f"{url}/v1/extract", files=files, timeout=30).status_code == 200
        assert service.counters_.refused_busy == 1


def test_request_time_limit_answers_503(http, tiny_model_file, tiny_extractor, crops):
    files = {"images": ("a.png", crops[0].read_bytes(), "image/png")}
    with running_server(tiny_settings(tiny_model_file, request_timeout_s=0.3), tiny_extractor) as (url, service):
        with service._detect_lock:
            response = http.post(f"{url}/v1/extract", files=files, timeout=30)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "longer than 0.3 s" in response.json()["detail"]
        wait_until(lambda: service.counters_.skipped_cancelled == 1, "the abandoned request's detection to be skipped")
        assert service.counters_.images_detected == 0 and service.counters_.timed_out == 1


def test_a_client_that_disconnects_costs_the_server_nothing_further(http, tiny_model_file, tiny_extractor, crops):
    data = crops[0].read_bytes()
    body = (b'--XX\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
            + data + b"\r\n--XX--\r\n")
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, service):
        host, port = url.removeprefix("http://").split(":")
        with service._detect_lock:
            with socket.create_connection((host, int(port))) as connection:
                connection.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                wait_until(lambda: service.counters_.requests == 1, "the request to arrive")
            wait_until(lambda: service.counters_.disconnected == 1, "the server to notice the disconnect")
        wait_until(lambda: service.counters_.skipped_cancelled == 1, "the queued detection to be skipped")
        assert service.counters_.images_detected == 0 and service.batcher_.stats.faces == 0
        health = http.get(f"{url}/v1/health").json()  # and the server still answers
        assert health["counters"]["disconnected"] == 1


def test_compare_odd_one_out_and_search_with_thumbnails(tiny_model_file, tiny_extractor, crops, tmp_path):
    from deepfever.applications.search import build_index, save_index

    index = save_index(build_index(tiny_extractor.extract(crops), model=str(tiny_model_file)), tmp_path / "idx")
    upload = {path.name: (path.name, path.read_bytes(), "image/png") for path in crops}
    with running_server(tiny_settings(tiny_model_file, index=str(index)), tiny_extractor) as (url, _), \
            httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/v1/health").json()
        assert health["index"]["faces"] == len(crops) and "faces of the index" in health["reference"]

        hits = client.post("/v1/search", files={"image": upload["crop2.png"]}, data={"k": "3"}).json()["results"]
        assert [hit["rank"] for hit in hits] == [1, 2, 3]
        assert hits[0]["path"] == "crop2.png" and hits[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
        thumbnail = client.get(hits[0]["thumbnail"])
        assert thumbnail.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumbnail.content)).size == (128, 128)  # face_thumbnail: the longer side at the index thumbnail size
        assert client.get("/v1/index/thumbnails/99").status_code == 404

        same = client.post("/v1/compare", files={"a": upload["crop1.png"], "b": upload["crop1.png"]}).json()
        assert same["cosine_distance"] == pytest.approx(0.0, abs=1e-5)
        assert same["percentile"] is not None and "random pairs of reference faces" in same["interpretation"]
        other = client.post("/v1/compare", files={"a": upload["crop1.png"], "b": upload["crop4.png"]}).json()
        assert other["cosine_distance"] > same["cosine_distance"] and other["percentile"] >= same["percentile"]

        odd = client.post("/v1/odd-one-out", files={"a": upload["crop1.png"], "b": upload["crop3.png"], "c": upload["crop1.png"]}).json()
        assert odd["odd_one_out"] == 1 and odd["odd_path"] == "crop3.png" and odd["pair_distances"]["ac"] == pytest.approx(0, abs=1e-5)


def test_page_and_api_reference_are_served_from_the_package_without_the_internet(tiny_model_file, tiny_extractor):
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), f"{path.name} links outside the server"
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, _), httpx.Client(base_url=url) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
        assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/static/../api.py").status_code == 404 and client.get("/static/nope.js").status_code == 404
        assert "/static/docs.js" in client.get("/docs").text
        spec = client.get("/openapi.json").json()
        assert {"/v1/extract", "/v1/compare", "/v1/odd-one-out", "/v1/search", "/v1/health"} <= set(spec["paths"])
        # Request forms and responses are pydantic models, published with their limits.
        assert spec["paths"]["/v1/search"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SearchResponse"}
        schemas = spec["components"]["schemas"]
        assert schemas["OddOneOutForm"]["properties"]["temperature"]["minimum"] == 1e-6
        assert schemas["SearchForm"]["properties"]["k"]["maximum"] == 100
        assert {"ExtractResponse", "CompareResponse", "OddOneOutResponse", "HealthResponse", "ErrorResponse"} <= set(schemas)


def test_cli_serve_starts_on_a_free_port_and_stops_on_ctrl_c(http, tiny_model_file):
    command = [sys.executable, "-m", "deepfever", "serve", "--model", str(tiny_model_file), "--detector", "none",
               "--device", "cpu", "--port", "0", "--max-concurrency", "4"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        ports = {}
        for line in process.stderr:  # uvicorn's line, then ours: both name the port the system picked
            for source, pattern in (("uvicorn", r"Uvicorn running on http://127\.0\.0\.1:(\d+)"), ("page", r"page at http://127\.0\.0\.1:(\d+)/")):
                if match := re.search(pattern, line):
                    ports[source] = int(match.group(1))
            if "page" in ports:
                break
        port = ports.get("page")
        assert port and ports == {"uvicorn": port, "page": port}, f"deepfever serve reported {ports}"
        health = http.get(f"http://127.0.0.1:{port}/v1/health", timeout=10).json()
        assert health["detector"] == "none" and health["limits"]["max_concurrency"] == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_served_rows_match_offline_extract_on_a_shared_photo(http, shared):
    photo = shared / "data" / "photos" / "couple.jpg"
    extractor = Extractor(detector="yunet", detector_options={"model_path": str(shared / "models" / "face_detection_yunet_2026may.onnx")})
    offline = extractor.extract([photo])
    with running_server(ServeSettings(detector="yunet"), extractor) as (url, _):
        body = http.post(f"{url}/v1/extract", files={"images": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60).json()
    assert len(body["rows"]) == len(offline) == 2
    for row, (_, expected) in zip(body["rows"], offline.iterrows()):
        np.testing.assert_allclose([row[f"box_{k}"] for k in ("x1", "y1", "x2", "y2")],
                                   [expected[f"box_{k}"] for k in ("x1", "y1", "x2", "y2")], atol=1e-3)
        np.testing.assert_allclose(row["embedding"], expected["embedding"], atol=1e-4)
        assert row["emotion"] == expected["emotion"]
