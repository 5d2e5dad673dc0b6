from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.glossaries import UnknownGlossaryError
from service.schemas import TranslateRequest, TranslateResponse, aligned_to_response
from service.translate import InputError, prepare

router = APIRouter(prefix="/v1", tags=["translate"])


@router.post(
    "/translate",
    response_model=TranslateResponse,
    responses=responses(400, 413, 422, 500),
    summary="Translate a text or a structured article, synchronously",
)
async def translate(request: TranslateRequest, runtime: RuntimeDep) -> TranslateResponse:
    try:
        job = prepare(request, runtime.settings, runtime.glossaries)
    except UnknownGlossaryError as exc:
        raise ApiError(422, "unknown_glossary", str(exc), valid=exc.valid) from None
    except InputError as exc:
        raise ApiError(413 if exc.code == "too_large" else 422, exc.code, exc.message, valid=exc.valid) from None

    def run() -> TranslateResponse:
        with runtime.engine_lock:
            doc = runtime.pipeline.translate(
                job.article, targets=job.targets, glossary=job.glossary, glossary_names=job.glossary_names
            )
        return aligned_to_response(doc)

    return await run_in_threadpool(run)
