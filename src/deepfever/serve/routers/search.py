"""``POST /v1/search`` (nearest indexed expressions) and ``GET /v1/index/thumbnails/{row}``."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response

from deepfever.serve._edge import InMemoryFormRoute
from deepfever.serve.dependencies import Guard, Service, get_guard, get_index, work_slot
from deepfever.serve.routers.analysis import MULTIPART, chosen_faces
from deepfever.serve.schemas import ERROR_RESPONSES, ErrorResponse, SearchForm, SearchResponse

router = APIRouter(prefix="/v1", route_class=InMemoryFormRoute)


@router.post("/search", response_model=SearchResponse, dependencies=[Depends(work_slot), Depends(get_index)],
             responses={**ERROR_RESPONSES, 409: {"model": ErrorResponse, "description": "the server has no index"}},
             summary="The indexed faces whose expression is nearest a face of the image")
async def search(form: Annotated[SearchForm, Form(media_type=MULTIPART)], service: Service,
                 guard: Annotated[Guard, Depends(get_guard)]) -> dict:
    (query,) = await chosen_faces(service, guard, [form.image], [form.face])
    return {"query": query.rows[0], "results": service.search(query, form.k)}


@router.get("/index/thumbnails/{row}", response_class=Response, summary="JPEG thumbnail of an indexed face",
            responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorResponse, "description": "no image face at this row"}})
async def thumbnail(row: int, service: Service) -> Response:
    return Response(await service.thumbnail(row), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
