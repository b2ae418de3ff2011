"""The API's request forms and responses as pydantic models: validated at the edge, published in ``/openapi.json``.

Form models hold the uploaded files and the fields that go with them, so a bad value (a temperature
of ``inf``, a ``k`` of 1000) is a 422 from validation before any image is decoded. Response models
name the fields the page and clients rely on; rows and search hits keep every column the index or
the model adds (``p_*`` per class, ``frame``, ``track``), so they allow extra keys.
"""
from __future__ import annotations

from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

from deepfever.applications.compare import ODD_ONE_OUT_TEMPERATURE

MAX_SEARCH_K = 100
MIN_TEMPERATURE = 1e-6
"""Smallest odd-one-out temperature: below it the softmax is already a hard choice, and at ~1e-308
``distance / temperature`` overflows to ``inf`` and the probabilities become NaN."""


# -- request forms (multipart/form-data) ---------------------------------------------------
class ExtractForm(BaseModel):
    images: list[UploadFile] = Field(description="image files (field name `images`, repeatable)")


class CompareForm(BaseModel):
    a: UploadFile = Field(description="first image")
    b: UploadFile = Field(description="second image")
    face_a: int = Field(0, description="which face of `a` (0 = first detected)")
    face_b: int = Field(0, description="which face of `b`")


class OddOneOutForm(BaseModel):
    a: UploadFile = Field(description="first image")
    b: UploadFile = Field(description="second image")
    c: UploadFile = Field(description="third image")
    face_a: int = Field(0, description="which face of `a`")
    face_b: int = Field(0, description="which face of `b`")
    face_c: int = Field(0, description="which face of `c`")
    temperature: float = Field(ODD_ONE_OUT_TEMPERATURE, ge=MIN_TEMPERATURE, allow_inf_nan=False,
                               description=f"softmax temperature in cosine-distance units (finite, at least {MIN_TEMPERATURE:g})")


class SearchForm(BaseModel):
    image: UploadFile = Field(description="query image")
    face: int = Field(0, description="which face of the image")
    k: int = Field(10, ge=1, le=MAX_SEARCH_K, description=f"how many nearest faces (1..{MAX_SEARCH_K})")


# -- responses -----------------------------------------------------------------------------
class Failure(BaseModel):
    path: str = Field(description="the upload's file name (a label: never opened)")
    reason: str
    status: int = Field(description="the HTTP status this file alone would have got (200: decoded, no face)")


class ErrorResponse(BaseModel):
    """Every refusal: the reason in words, and for ``/v1/extract`` the reason per file."""

    detail: str
    failures: list[Failure] | None = None


class ImageSummary(BaseModel):
    path: str
    width: int
    height: int
    faces: int


class ExtractResponse(BaseModel):
    images: list[ImageSummary]
    rows: list[dict[str, Any]] = Field(description="the rows `deepfever extract` writes, one per face, in its column order")
    failures: list[Failure]


class CompareResponse(BaseModel):
    a: str
    face_a: int
    emotion_a: str | None
    b: str
    face_b: int
    emotion_b: str | None
    cosine_similarity: float
    cosine_distance: float
    percentile: float | None = Field(description="share of random reference pairs at most this far apart (null without a reference)")
    reference: str | None
    interpretation: str | None
    model_id: str


class OddOneOutResponse(BaseModel):
    odd_one_out: int = Field(description="0, 1 or 2: the image whose face is least like the other two")
    confidence: float
    probabilities: list[float]
    pair_distances: dict[str, float]
    temperature: float
    inputs: list[str]
    emotions: list[str | None]
    model_id: str
    odd_path: str


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="allow")  # the index's own columns: frame, track, face, emotion, score

    rank: int
    row: int
    path: str = Field(description="relative to the index root, or absolute when the server runs with --absolute-paths")
    similarity: float
    thumbnail: str | None = Field(description="URL of the face's JPEG thumbnail, when one can be cut")


class SearchResponse(BaseModel):
    query: dict[str, Any]
    results: list[SearchHit]


class IndexInfo(BaseModel):
    path: str
    faces: int


class HealthResponse(BaseModel):
    status: str
    fingerprint: dict[str, Any]
    model: str
    detector: str
    classes: list[str]
    uptime_s: float
    index: IndexInfo | None
    reference: str | None
    limits: dict[str, float]
    counters: dict[str, int]
    batching: dict[str, float]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description} for status, description in {
        408: "the request body arrived too slowly (--body-timeout)",
        413: "too many bytes, pixels or files", 415: "not an image", 503: "server busy or out of time; retry after Retry-After",
    }.items()}
"""Refusals every POST can get, for the API reference (422 comes from FastAPI's validation)."""
