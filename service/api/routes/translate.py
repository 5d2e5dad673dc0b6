from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from models.engine import DeadlineExceeded
from models.scheduler import QueueFull
from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.api.security import AUTH_ERRORS, Requires
from service.auth import Permission
from service.glossaries import UnknownGlossaryError
from service.jobs.articles import Principal
from service.schemas import TranslateRequest, TranslateResponse, aligned_to_response
from service.translate import InputError, prepare

router = APIRouter(prefix="/v1", tags=["translate"])


@router.post(
    "/translate",
    response_model=TranslateResponse,
    responses=responses(400, *AUTH_ERRORS, 413, 422, 500, 503, 504),
    summary="Translate a text or a structured article, synchronously",
)
async def translate(
    request: TranslateRequest, runtime: RuntimeDep, _: Annotated[Principal, Requires(Permission.TRANSLATE)]
) -> TranslateResponse:
    """Translates `text`, or an `article`'s fields, in `format` (text, markdown or html) into each
    of `targets`, and answers when it is done: the document block by block and sentence by
    sentence in every variant (with glossary hits and QA flags), and each variant's full text.
    Nothing is stored: for an article to review, or one longer than a request should wait for,
    submit it with `POST /v1/articles`. 503 `busy` (with `Retry-After`) when the service has too
    many sentences waiting; 504 `timeout` after `DUIYI_REQUEST_TIMEOUT_S`."""
    try:
        # In a worker thread: it parses the article (and reads glossaries), which for a large page
        # takes long enough to hold up every other request if done on the event loop.
        job = await run_in_threadpool(prepare, request, runtime.settings, runtime.glossaries)
    except UnknownGlossaryError as exc:
        raise ApiError(422, "unknown_glossary", str(exc), valid=exc.valid) from None
    except InputError as exc:
        raise ApiError(413 if exc.code == "too_large" else 422, exc.code, exc.message, valid=exc.valid) from None

    deadline = time.monotonic() + runtime.settings.request_timeout_s

    def run() -> TranslateResponse:
        doc = runtime.pipeline.translate(
            job.article,
            targets=job.targets,
            glossary=job.glossary,
            glossary_names=job.glossary_names,
            deadline=deadline,
            parsed=job.parsed,  # parsed once, to check it
        )
        return aligned_to_response(doc)

    try:
        return await run_in_threadpool(run)
    except QueueFull as exc:
        retry = math.ceil(exc.retry_after_s)
        raise ApiError(503, "busy", f"{exc}; retry after {retry} s", headers={"Retry-After": str(retry)}) from None
    except DeadlineExceeded:
        raise ApiError(
            504,
            "timeout",
            f"the translation did not finish within {runtime.settings.request_timeout_s:g} s "
            "(DUIYI_REQUEST_TIMEOUT_S); nothing more of it will be decoded",
        ) from None
