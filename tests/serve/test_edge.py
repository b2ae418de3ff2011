"""``deepfever serve`` under attack at the edge: slow clients, foreign Host headers, odd form values, big uploads.

Every test talks to a real uvicorn server on 127.0.0.1 (``test_serve.running_server``) over real
sockets, is bounded in time and stops its clients and server by itself.
"""
from __future__ import annotations

import io
import math
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn, python-multipart) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is needed to call the server")

from conftest import write_random_crops  # noqa: E402
from test_serve import running_server, tiny_settings  # noqa: E402

from deepfever import Extractor  # noqa: E402

DRIP_HEADERS = (b"POST /v1/extract HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                b"Content-Length: 100000\r\n\r\n")
FILE_PART = b'--XX\r\nContent-Disposition: form-data; name="images"; filename="h.png"\r\nContent-Type: image/png\r\n\r\n'
"""The start of a well-formed body, so the server keeps reading what follows."""


@pytest.fixture(scope="module")
def tiny_extractor(tiny_model_file) -> Extractor:
    return Extractor(model=str(tiny_model_file), detector="none", batch_size=16).load()


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    return write_random_crops(tmp_path_factory.mktemp("crops"), 4, "crop")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextmanager
def dripping_clients(port: int, count: int, first: bytes, drip: bytes = b"-") -> Iterator[list[socket.socket]]:
    """``count`` connections that send ``first``, then one byte of ``drip`` a second each until the block ends."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    stop = threading.Event()

    def drip_forever() -> None:
        while not stop.wait(1.0):
            for connection in connections:
                try:
                    connection.sendall(drip)
                except OSError:  # the server closed it: that client is done
                    pass

    for connection in connections:
        connection.sendall(first)
    dripper = threading.Thread(target=drip_forever, name="test-dripper", daemon=True)
    dripper.start()
    try:
        yield connections
    finally:
        stop.set()
        dripper.join(5)
        for connection in connections:
            connection.close()


def read_until_closed(connection: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes)."""
    connection.settimeout(timeout)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


# -- 18.1: slow clients --------------------------------------------------------------------
def test_a_normal_request_is_answered_while_32_clients_drip_their_bodies(tiny_model_file, tiny_extractor, crops):
    # Default limits: 32 work slots, as many as there are dripping clients.
    files = {"images": ("a.png", crops[0].read_bytes(), "image/png")}
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, service), \
            dripping_clients(port_of(url), 32, DRIP_HEADERS + FILE_PART):
        time.sleep(1.5)  # every dripper has sent its headers and a byte or two of body
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/extract", files=files, timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert len(response.json()["rows"]) == 1 and elapsed < 5.0
        assert service.counters_.refused_busy == 0


def test_slow_bodies_get_408_and_slow_headers_are_cut_off(tiny_model_file, tiny_extractor):
    settings = tiny_settings(tiny_model_file, body_timeout_s=1.0, header_timeout_s=1.0)
    with running_server(settings, tiny_extractor) as (url, service):
        port = port_of(url)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as body_stalls, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as headers_stall, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
            started = time.monotonic()
            body_stalls.sendall(DRIP_HEADERS + FILE_PART)
            headers_stall.sendall(DRIP_HEADERS[:40])
            answer = read_until_closed(body_stalls, 10)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"did not arrive within 1 s (--body-timeout)" in answer
            assert read_until_closed(headers_stall, 10) == b"" and read_until_closed(silent, 10) == b""
            assert time.monotonic() - started < 5.0
        assert service.counters_.slow_bodies == 1 and service.counters_.requests == 0
        assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200


def test_bodies_in_progress_share_a_byte_budget(tiny_model_file, tiny_extractor, crops):
    # One work slot and 0.05 MB per body: 52,428 bytes of bodies may be held at once.
    settings = tiny_settings(tiny_model_file, max_concurrency=1, max_upload_mb=0.05)
    good = crops[0].read_bytes()
    with running_server(settings, tiny_extractor) as (url, service):
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=5) as hoarder:
            hoarder.sendall(DRIP_HEADERS.replace(b"100000", b"50000") + FILE_PART + b"x" * 45_000)  # then stalls, holding 45 KB
            time.sleep(0.5)
            files = {"images": ("a.png", good + b"\x00" * 10_000, "image/png")}
            refused = httpx.post(f"{url}/v1/extract", files=files, timeout=30)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1", refused.text
        assert "bytes of uploads held" in refused.json()["detail"]
        time.sleep(0.5)  # the hoarder hung up: its bytes are released
        assert httpx.post(f"{url}/v1/extract", files=files, timeout=30).status_code == 200


# -- 18.2: Host header and paths -----------------------------------------------------------
def test_only_the_bound_address_and_loopback_names_are_served(tiny_model_file, tiny_extractor):
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, _), httpx.Client(base_url=url, timeout=10) as client:
        port = port_of(url)
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert client.get("/v1/health", headers={"Host": host}).status_code == 200, host
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.2", "localhost.attacker.example", "", "[::2]"):
            response = client.get("/v1/health", headers={"Host": host})
            assert response.status_code == 400 and "host" in response.text.lower(), host
        assert client.get("/", headers={"Host": "rebound.example"}).status_code == 400
        assert client.get("/v1/index/thumbnails/0", headers={"Host": "rebound.example"}).status_code == 400
        assert client.post("/v1/extract", headers={"Host": "rebound.example"}, files={"images": ("a.png", b"x")}).status_code == 400


def test_names_given_by_the_operator_are_served_too(tiny_model_file, tiny_extractor):
    with running_server(tiny_settings(tiny_model_file, allowed_hosts=("Faces.LAN",)), tiny_extractor) as (url, _), \
            httpx.Client(base_url=url, timeout=10) as client:
        for host in ("faces.lan", f"FACES.lan:{port_of(url)}", "localhost"):
            assert client.get("/v1/health", headers={"Host": host}).status_code == 200, host
        assert client.get("/v1/health", headers={"Host": "other.lan"}).status_code == 400


def test_trusted_hosts_name_the_bound_address_unless_it_is_a_wildcard():
    from deepfever.serve.app import trusted_hosts

    assert trusted_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert trusted_hosts("192.168.1.5", ("Faces.lan",)) == ["localhost", "127.0.0.1", "[::1]", "192.168.1.5", "faces.lan"]
    assert trusted_hosts("fe80::1") == ["localhost", "127.0.0.1", "[::1]", "[fe80::1]"]
    assert trusted_hosts("0.0.0.0") == trusted_hosts("::") == ["localhost", "127.0.0.1", "[::1]"]


def test_search_names_files_relative_to_the_index_root_unless_absolute_paths(tiny_model_file, tiny_extractor, tmp_path):
    from deepfever.applications.search import build_index, save_index

    photos = [*write_random_crops(tmp_path / "photos" / "a", 2, "x"), *write_random_crops(tmp_path / "photos" / "b", 2, "y", seed=1)]
    index = save_index(build_index(tiny_extractor.extract(photos), model=str(tiny_model_file)), tmp_path / "idx")
    query = {"image": ("q.png", photos[3].read_bytes(), "image/png")}
    for absolute, expected in ((False, "b/y1.png"), (True, str(photos[3]))):
        settings = tiny_settings(tiny_model_file, index=str(index), absolute_paths=absolute)
        with running_server(settings, tiny_extractor) as (url, _):
            hits = httpx.post(f"{url}/v1/search", files=query, data={"k": "4"}, timeout=30).json()["results"]
        assert hits[0]["path"] == expected
        assert all(str(tmp_path) not in hit["path"] for hit in hits) != absolute


# -- 18.3: odd-one-out temperature ---------------------------------------------------------
def test_odd_one_out_refuses_temperatures_it_cannot_compute_with_422(tiny_model_file, tiny_extractor, crops):
    files = {key: (path.name, path.read_bytes(), "image/png") for key, path in zip("abc", crops)}
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        for value in ("inf", "-inf", "nan", "1e-320", "0", "-0.5", "1e400", "hot"):
            response = client.post("/v1/odd-one-out", files=files, data={"temperature": value})
            assert response.status_code == 422, (value, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", "temperature"], value
        for value in ("1e-6", "0.05", "1e300"):  # the keep-alive connection still serves, and every number is finite
            answer = client.post("/v1/odd-one-out", files=files, data={"temperature": value})
            assert answer.status_code == 200, (value, answer.text)
            assert all(math.isfinite(p) for p in answer.json()["probabilities"]) and answer.json()["temperature"] == float(value)


# -- 18.4: uploads stay in memory ----------------------------------------------------------
def test_uploads_over_1_mb_never_touch_disk_and_their_buffers_are_closed(tiny_model_file, tiny_extractor, monkeypatch):
    import starlette.formparsers

    buffers: list[tempfile.SpooledTemporaryFile] = []

    class Recorded(tempfile.SpooledTemporaryFile):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            buffers.append(self)

    files_on_disk: list[object] = []
    real_temporary_file = tempfile.TemporaryFile
    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Recorded)
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: files_on_disk.append(a) or real_temporary_file(*a, **k))
    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    assert buffer.tell() > 2 * 1024 * 1024
    with running_server(tiny_settings(tiny_model_file), tiny_extractor) as (url, _):
        response = httpx.post(f"{url}/v1/extract", files={"images": ("big.png", buffer.getvalue(), "image/png")}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["images"] == [{"path": "big.png", "width": 900, "height": 900, "faces": 1}]
    assert len(buffers) == 1 and buffers[0].closed
    assert files_on_disk == [] and not buffers[0]._rolled
