"""Load and faults for ``deepfever serve`` on loopback: throughput, latency, hostile uploads, memory, disconnects.

Measures, in one run on one machine: offline ``extract`` images/s on copies of one single-face photo
(the yardstick), then a ``deepfever serve`` subprocess under 1 client (light load), 16 clients
(500 requests) and 16 clients with 10 % hostile uploads (truncated, too many bytes, too many pixels,
not an image); its resident memory before and after; and clients that disconnect mid-upload and
right after sending. Bounded: ``--requests`` per phase and ``--max-seconds`` overall.

Run: .venv/bin/python benchmarks/serve_load.py [--detector yunet] [--requests 500] [--clients 16]
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from _common import SHARED, result_name, save_result
from deepfever import Extractor
from deepfever.models import DEFAULT_MODEL
from deepfever.pipeline import ExtractionReport

MAX_UPLOAD_MB = 5
HOSTILE_KINDS = ("truncated", "too_many_bytes", "too_many_pixels", "not_an_image")
EXPECTED_STATUS = {"truncated": 422, "too_many_bytes": 413, "too_many_pixels": 413, "not_an_image": 415}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--detector", default="yunet", choices=("mtcnn", "yunet"))
    parser.add_argument("--photo", default=str(SHARED / "data" / "photos" / "img22.jpg"), help="a photo with exactly one face")
    parser.add_argument("--requests", type=int, default=500, help="requests per load phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--light", type=int, default=40, help="sequential requests of the light-load phase")
    parser.add_argument("--hostile-share", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=900, help="stop issuing requests after this long")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    photo = Path(args.photo)
    data = photo.read_bytes()
    yunet = str(SHARED / "models" / "face_detection_yunet_2026may.onnx")
    options = {"model_path": yunet} if args.detector == "yunet" else None

    extractor = Extractor(model=args.model, detector=args.detector, detector_options=options)
    offline, reference = offline_rate(extractor, photo, copies=60)
    print(f"offline extract: {offline['images_per_second']:.2f} images/s", file=sys.stderr)

    command = [sys.executable, "-m", "deepfever", "serve", "--model", args.model, "--detector", args.detector, "--device", "cpu",
               "--port", "0", "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-concurrency", str(2 * args.clients)]
    if args.detector == "yunet":
        command += ["--yunet-model", yunet]
    server, url = start_server(command)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            check = Checker(reference)
            burst(url, [("good", data)] * (2 * args.clients), args.clients, photo.name, check, deadline)  # warm-up
            memory_before = memory_kib(server.pid)
            light = summarise(burst(url, [("good", data)] * args.light, 1, photo.name, check, deadline))
            load = summarise(burst(url, [("good", data)] * args.requests, args.clients, photo.name, check, deadline))
            mixed_payloads = hostile_mix(data, args.requests, args.hostile_share)
            hostile = summarise(burst(url, mixed_payloads, args.clients, photo.name, check, deadline))
            disconnects = disconnect_phase(url, client, data, args.clients, photo.name, check, deadline)
            time.sleep(1.0)
            memory_after = memory_kib(server.pid)
            health = client.get("/v1/health").json()
    finally:
        server.terminate()
        server.wait(30)

    per_image_ms = 1000.0 / offline["images_per_second"]
    result = {
        "detector": args.detector, "photo": photo.name, "clients": args.clients,
        "note": "2 shared CPU cores; a model training ran in the background, so absolute numbers are low and noisy; "
                "offline and served rates were measured in the same run",
        "offline": offline,
        "light_load": light, "load": load, "hostile": hostile, "disconnects": disconnects,
        "memory_kib": {"before": memory_before["rss"], "after": memory_after["rss"], "peak": memory_after["peak"],
                       "after_over_before": memory_after["rss"] / memory_before["rss"]},
        "server_batching": health["batching"], "server_counters": health["counters"],
        "targets": {
            "served_over_offline_throughput": load["requests_per_second"] / offline["images_per_second"],
            "served_over_offline_target": 0.7,
            "light_p95_ms": light["latency_ms"]["p95"], "light_p95_limit_ms": 2 * per_image_ms,
            "offline_per_image_ms": per_image_ms,
        },
    }
    save_result(result_name(f"serve_load_{args.detector}", args.model), result)


def offline_rate(extractor: Extractor, photo: Path, copies: int) -> tuple[dict, np.ndarray]:
    """``extract``'s images/s on ``copies`` copies of the photo (best of two after a warm-up) and its face's vector."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(copies):
            paths.append(Path(folder) / f"{index:03d}{photo.suffix}")
            shutil.copyfile(photo, paths[-1])
        table = extractor.extract(paths[:4])
        if len(table) != 4:
            raise SystemExit(f"serve_load: {photo} must hold exactly one face for {extractor.detector}, found {len(table) // 4 or len(table)}")
        runs = []
        for _ in range(2):
            runs.append(ExtractionReport.of_table(extractor.extract(paths)).images_per_second)
    return {"images": copies, "runs_images_per_second": runs, "images_per_second": max(runs)}, np.asarray(table["embedding"].iloc[0])


def start_server(command: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep the pipe drained
            return process, match.group(1)
    raise SystemExit(f"serve_load: the server did not start ({' '.join(command)})")


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory now (VmRSS) and at its peak (VmHWM) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"{field}:\s+(\d+)", status).group(1)) for key, field in (("rss", "VmRSS"), ("peak", "VmHWM"))}


class Checker:
    """Is an answer right? One face, with the vector offline ``extract`` gives for the same photo."""

    def __init__(self, reference: np.ndarray) -> None:
        self.reference = reference

    def good(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        rows = response.json()["rows"]
        return len(rows) == 1 and float(np.abs(np.asarray(rows[0]["embedding"]) - self.reference).max()) < 1e-3


def hostile_mix(data: bytes, count: int, share: float) -> list[tuple[str, bytes]]:
    """``count`` payloads, every ``1/share``-th one hostile, cycling through the hostile kinds."""
    big = Image.new("L", (8000, 8000), 128)  # 64 MP, a few kB as PNG: refused from its header
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    hostile = {"truncated": data[: len(data) // 2], "too_many_bytes": os.urandom((MAX_UPLOAD_MB + 1) * 1024 * 1024),
               "too_many_pixels": buffer.getvalue(), "not_an_image": os.urandom(50_000)}
    step = round(1 / share)
    payloads = []
    for index in range(count):
        kind = HOSTILE_KINDS[(index // step) % len(HOSTILE_KINDS)] if index % step == step - 1 else "good"
        payloads.append((kind, hostile.get(kind, data)))
    return payloads


def burst(url: str, payloads: list[tuple[str, bytes]], clients: int, name: str, check: Checker, deadline: float) -> list[dict]:
    """Send every payload to /v1/extract from ``clients`` threads; one record per request."""
    local = threading.local()

    def send(payload: tuple[str, bytes]) -> dict:
        kind, body = payload
        if time.monotonic() > deadline:
            return {"kind": kind, "skipped": True}
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        started = time.perf_counter()
        try:
            response = local.client.post("/v1/extract", files={"images": (name, body, "image/jpeg")})
        except httpx.HTTPError as error:
            local.client = httpx.Client(base_url=url, timeout=120)
            return {"kind": kind, "status": None, "error": type(error).__name__, "seconds": time.perf_counter() - started}
        seconds = time.perf_counter() - started
        correct = check.good(response) if kind == "good" else response.status_code == EXPECTED_STATUS[kind]
        return {"kind": kind, "status": response.status_code, "correct": correct, "seconds": seconds}

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        records = list(pool.map(send, payloads))
    wall = time.perf_counter() - started
    for record in records:
        record["wall"] = wall
    return records


def summarise(records: list[dict]) -> dict:
    sent = [record for record in records if not record.get("skipped")]
    good = [record for record in sent if record["kind"] == "good"]
    latencies = np.array([record["seconds"] for record in good]) * 1000
    wall = records[0]["wall"]
    by_kind: dict[str, dict] = {}
    for record in sent:
        entry = by_kind.setdefault(record["kind"], {"sent": 0, "correct": 0, "statuses": {}})
        entry["sent"] += 1
        entry["correct"] += bool(record.get("correct"))
        entry["statuses"][str(record["status"])] = entry["statuses"].get(str(record["status"]), 0) + 1
    return {
        "requests": len(sent), "skipped_for_time": len(records) - len(sent), "seconds": wall,
        "requests_per_second": len(sent) / wall, "good_requests_per_second": len(good) / wall,
        "latency_ms": {name: float(np.percentile(latencies, q)) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"mean": float(latencies.mean()), "max": float(latencies.max())},
        "server_errors": sum(1 for record in sent if record["status"] is None or record["status"] >= 500),
        "wrong_answers": sum(1 for record in sent if not record.get("correct")), "by_kind": by_kind,
    }


def disconnect_phase(url: str, client: httpx.Client, data: bytes, clients: int, name: str, check: Checker, deadline: float) -> dict:
    """Clients that hang up mid-upload (must cost no detection) and right after sending while the server is busy."""
    host, port = url.removeprefix("http://").split(":")
    body = (b'--XX\r\nContent-Disposition: form-data; name="images"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            + data + b"\r\n--XX--\r\n")
    head = (b"POST /v1/extract HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode())

    def hang_up(part: bytes) -> None:
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(head + part)
            time.sleep(0.05)

    before = client.get("/v1/health").json()["counters"]
    for _ in range(clients):
        hang_up(body[: len(body) // 2])
    time.sleep(0.5)
    middle = client.get("/v1/health").json()["counters"]
    # After-body hang-ups queued behind a burst of good requests: the server should skip most of them.
    hangers = [threading.Thread(target=hang_up, args=(body,)) for _ in range(clients)]
    good = threading.Thread(target=burst, args=(url, [("good", data)] * clients, clients, name, check, deadline))
    good.start()
    for thread in hangers:
        thread.start()
    for thread in [good, *hangers]:
        thread.join()
    time.sleep(1.0)
    after = client.get("/v1/health").json()["counters"]
    return {
        "mid_upload": {"clients": clients, "detections_caused": middle["images_detected"] - before["images_detected"]},
        "after_body": {"clients": clients, "noticed_disconnects": after["disconnected"] - middle["disconnected"],
                       "detections_skipped": after["skipped_cancelled"] - middle["skipped_cancelled"],
                       "detections_run_for_them": after["images_detected"] - middle["images_detected"] - clients},
        "server_answers_after": client.get("/v1/health").status_code,
    }


if __name__ == "__main__":
    main()
