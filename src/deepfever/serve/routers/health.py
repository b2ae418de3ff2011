"""``GET /v1/health``: what is loaded, the limits, and what the server has done."""
from __future__ import annotations

from fastapi import APIRouter

from deepfever.serve.dependencies import Service
from deepfever.serve.schemas import HealthResponse

router = APIRouter(prefix="/v1")


@router.get("/health", response_model=HealthResponse, summary="Model fingerprint, detector, uptime, limits and counters")
async def health(service: Service) -> dict:
    return service.health()
