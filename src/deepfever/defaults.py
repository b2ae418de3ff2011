"""Every default that more than one entry point needs, in one light module (no numpy, pandas or torch).

Why one module: the Extractor, ``deepfever extract``, ``data prepare``, ONNX calibration, probes,
benchmarks, training and the server each used to carry their own copy, and the copies drifted (the
server detected faces with MTCNN while everything else used YuNet). Entry points read these names, or
the face stage recorded in the model file; ``tests/pipeline/test_defaults.py`` checks that they agree.
"""
from __future__ import annotations

MODEL = "fevernet_s.ferplus"
"""The bundled model every command uses unless told otherwise."""

DETECTOR = "yunet"
"""Face detector for photos and video frames. Chosen by measurement on ../shared/data/photos
(benchmarks/photos_end_to_end.py): YuNet finds every face MTCNN finds there and runs several times faster."""

DETECTORS = ("mtcnn", "yunet", "none")
"""Detector names an entry point accepts; ``none`` treats each image as one face crop framed like the template."""

LANDMARKS = "mtcnn"
"""Landmark convention of the bundled template: it was measured with MTCNN's five points (faces/template.py)."""

INTERPOLATION = "area_then_linear"
"""How a face is resampled onto its crop: area averaging while it shrinks more than 2x, then a bilinear warp."""

GREY = "bt601"
"""RGB -> grey conversion of crops for one-channel models: ITU-R BT.601 luma, rounded to uint8 (OpenCV's)."""

DEVICE = "auto"
"""``auto``: CUDA when present, else the CPU."""

BACKEND = "auto"
"""How the model runs: ``auto`` is ONNX Runtime on the CPU (no torch import at start-up, faster; outputs equal
to torch's within 1e-6, benchmarks/onnx_int8.py) and torch on a GPU."""

BACKENDS = ("auto", "torch", "onnxruntime")

BATCH_SIZE = 64
"""Faces per model batch at inference; faces of several images or frames share a batch."""

FLIP_TTA = False
"""Extraction: average each face with its mirror image (2x slower, slightly more accurate)."""

EVAL_FLIP_TTA = True
"""Evaluation and model selection: benchmarks report flip-averaged accuracy."""

OUTPUT_PRIOR: str | None = None
"""Class prior of reported probabilities; None: the one the model file records."""

MAX_IMAGE_PIXELS = 80_000_000
"""Largest image file decoded (checked from the header); larger ones are a failure, not an out-of-memory."""

UPLOAD_MAX_PIXELS = 40_000_000
"""Largest uploaded image the server decodes (stricter than files: requests come from anyone)."""

DETECT_SIDE = 320
"""Video frames are shrunk so their longer side is at most this before detection (boxes mapped back)."""

TRACK_MAX_AGE_S = 3.0
"""Seconds a video track survives without its face before it ends."""

TRACK_MIN_HITS = 2
"""Processed frames in a row before a new face gets a track id and rows."""

DECODE_AHEAD = 4
"""Images decoded ahead (in threads) of the one being detected."""

CHUNK_SIZE = 256
"""Inputs per saved chunk of an extraction run: small enough to lose little to an interruption, large
enough to keep batches full."""
