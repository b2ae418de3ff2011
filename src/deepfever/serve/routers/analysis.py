"""``POST /v1/extract``, ``/v1/compare`` and ``/v1/odd-one-out``: faces of uploaded images, and what they say."""
from __future__ import annotations

import asyncio
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Form, UploadFile

from deepfever.serve._edge import InMemoryFormRoute
from deepfever.serve._service import Analysis
from deepfever.serve._uploads import ClientInputError
from deepfever.serve.dependencies import Guard, Service, get_guard, work_slot
from deepfever.serve.schemas import (ERROR_RESPONSES, CompareForm, CompareResponse, ExtractForm, ExtractResponse, OddOneOutForm,
                                     OddOneOutResponse)

MAX_NAME_CHARS = 200
MULTIPART = "multipart/form-data"

router = APIRouter(prefix="/v1", route_class=InMemoryFormRoute, dependencies=[Depends(work_slot)], responses=ERROR_RESPONSES)


async def read_upload(upload: UploadFile, position: int) -> tuple[str, bytes]:
    """(label, bytes) of an upload; the file name is only a label, never opened."""
    name = (upload.filename or f"upload[{position}]")[:MAX_NAME_CHARS]
    return name, await upload.read()


async def chosen_faces(service: Service, guard: Guard, files: list[UploadFile], faces: list[int]) -> list[Analysis]:
    """One analysis per upload, holding only the face asked for (a missing face is a 422)."""
    uploads = [await read_upload(upload, position) for position, upload in enumerate(files)]

    async def analyse_each(cancelled: threading.Event) -> list[Analysis]:
        return list(await asyncio.gather(*(service.analyse(data, name, cancelled, face) for (name, data), face in zip(uploads, faces))))

    return await guard.run(analyse_each)


@router.post("/extract", response_model=ExtractResponse,
             summary="Every face of one or more images: the rows `deepfever extract` writes")
async def extract(form: Annotated[ExtractForm, Form(media_type=MULTIPART)], service: Service,
                  guard: Annotated[Guard, Depends(get_guard)]) -> dict:
    if len(form.images) > service.settings.max_files:
        raise ClientInputError(413, f"extract: {len(form.images)} images in one request exceeds the limit of "
                                    f"{service.settings.max_files} (--max-files); split them over several requests")
    uploads = [await read_upload(upload, position) for position, upload in enumerate(form.images)]

    async def analyse_all(cancelled: threading.Event) -> list[Analysis | BaseException]:
        attempts = (service.analyse(data, name, cancelled) for name, data in uploads)
        return list(await asyncio.gather(*attempts, return_exceptions=True))

    outcomes = await guard.run(analyse_all)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ClientInputError):
            raise outcome
    failures = [{"path": name, "reason": outcome.reason, "status": outcome.status}
                for (name, _), outcome in zip(uploads, outcomes) if isinstance(outcome, ClientInputError)]
    analyses = [outcome for outcome in outcomes if isinstance(outcome, Analysis)]
    if not analyses:
        raise ClientInputError(max(failure["status"] for failure in failures),
                               "; ".join(failure["reason"] for failure in failures), failures)
    failures += [{"path": analysis.name, "reason": "no face detected", "status": 200} for analysis in analyses if not analysis.rows]
    return {"images": [{"path": a.name, "width": a.width, "height": a.height, "faces": len(a.rows)} for a in analyses],
            "rows": [row for analysis in analyses for row in analysis.rows], "failures": failures}


@router.post("/compare", response_model=CompareResponse,
             summary="Expression distance of a face in each of two images, with its percentile")
async def compare(form: Annotated[CompareForm, Form(media_type=MULTIPART)], service: Service,
                  guard: Annotated[Guard, Depends(get_guard)]) -> dict:
    return service.compare(*await chosen_faces(service, guard, [form.a, form.b], [form.face_a, form.face_b]))


@router.post("/odd-one-out", response_model=OddOneOutResponse,
             summary="Which of three faces has the expression least like the other two")
async def odd_one_out(form: Annotated[OddOneOutForm, Form(media_type=MULTIPART)], service: Service,
                      guard: Annotated[Guard, Depends(get_guard)]) -> dict:
    analyses = await chosen_faces(service, guard, [form.a, form.b, form.c], [form.face_a, form.face_b, form.face_c])
    return service.odd_one_out(analyses, form.temperature)
