"""Fetch, verify and cache the MTCNN weights without installing facenet-pytorch.

The three small state dicts ship inside the MIT-licensed ``facenet-pytorch==2.6.0`` wheel. We pin the
wheel by sha256 and extract only the weight files, so a tampered or different release is refused and
a warm cache never touches the network.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from deepfever.errors import WeightsUnavailableError
from deepfever.io.atomic import atomic_write
from deepfever.io.cache import cache_dir
from deepfever.io.hashing import file_sha256

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "facenet-pytorch==2.6.0"
WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
WHEEL_ENV = "DEEPFEVER_MTCNN_WHEEL"
PIP_TIMEOUT_S = 300

# sha256 of each file inside the pinned wheel: catches a corrupt cache or wrong hand-copied files.
WEIGHT_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}


def weights_dir() -> Path:
    """Directory holding ``{pnet,rnet,onet}.pt``: ``mtcnn`` under the package cache (``deepfever.io.cache.cache_dir``)."""
    return cache_dir() / "mtcnn"


def _cached_ok(directory: Path) -> bool:
    for name, expected in WEIGHT_SHA256.items():
        path = directory / f"{name}.pt"
        if not path.is_file():
            return False
        if file_sha256(path) != expected:
            logger.warning("%s has an unexpected sha256; fetching the MTCNN weights again", path)
            return False
    return True


def _how_to_fix(directory: Path) -> str:
    return (
        f"On a machine with internet access run `pip download --no-deps --only-binary=:all: {WHEEL_REQUIREMENT}"
        f" -d DIR`, copy the .whl here and set {WHEEL_ENV}=/path/to/the.whl; or copy pnet.pt, rnet.pt and"
        f" onet.pt from the wheel's facenet_pytorch/data/ into {directory}/."
    )


def _download_wheel(target: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               WHEEL_REQUIREMENT, "-d", str(target), "--quiet"]
    logger.info("downloading %s to extract the MTCNN weights", WHEEL_REQUIREMENT)
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.CalledProcessError as error:
        raise WeightsUnavailableError(
            f"MTCNN weights are not cached and `pip download {WHEEL_REQUIREMENT}` failed"
            f" (exit {error.returncode}: {error.stderr.strip()[-500:]}). {_how_to_fix(weights_dir())}"
        ) from error
    except (subprocess.TimeoutExpired, OSError) as error:
        raise WeightsUnavailableError(
            f"MTCNN weights are not cached and `pip download {WHEEL_REQUIREMENT}` did not finish ({error})."
            f" {_how_to_fix(weights_dir())}"
        ) from error
    wheels = sorted(target.glob("facenet_pytorch-2.6.0-*.whl"))
    if not wheels:
        raise WeightsUnavailableError(f"pip reported success but left no wheel in {target}. {_how_to_fix(weights_dir())}")
    return wheels[0]


def _extract(wheel: Path, directory: Path) -> None:
    digest = file_sha256(wheel)
    if digest != WHEEL_SHA256:
        raise WeightsUnavailableError(
            f"{wheel}: sha256 {digest} does not match the pinned {WHEEL_REQUIREMENT} wheel ({WHEEL_SHA256});"
            f" use the exact file from PyPI. {_how_to_fix(directory)}"
        )
    with zipfile.ZipFile(wheel) as archive:
        for name in WEIGHT_SHA256:
            with atomic_write(directory / f"{name}.pt") as tmp:
                tmp.write_bytes(archive.read(f"facenet_pytorch/data/{name}.pt"))


def ensure_weights() -> Path:
    """Return the cache directory with verified MTCNN weights, fetching them on first use.

    Raises ``WeightsUnavailableError`` (with instructions) when the cache is cold and neither
    ``$DEEPFEVER_MTCNN_WHEEL`` nor ``pip download`` can provide the pinned wheel.
    """
    directory = weights_dir()
    if _cached_ok(directory):
        return directory
    local_wheel = os.environ.get(WHEEL_ENV)
    if local_wheel:
        wheel = Path(local_wheel).expanduser()
        if not wheel.is_file():
            raise WeightsUnavailableError(f"{WHEEL_ENV}={local_wheel} is not a file. {_how_to_fix(directory)}")
        _extract(wheel, directory)
    else:
        with tempfile.TemporaryDirectory(prefix="deepfever-mtcnn-") as tmp:
            _extract(_download_wheel(Path(tmp)), directory)
    if not _cached_ok(directory):
        raise WeightsUnavailableError(f"extracted MTCNN weights in {directory} failed verification. {_how_to_fix(directory)}")
    logger.info("MTCNN weights cached in %s", directory)
    return directory
