from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.schemas import Health, Ready

router = APIRouter(tags=["health"])
_PROBE_TTL_S = 10.0


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=responses(503), summary="The model is loaded and answering")
async def readyz(runtime: RuntimeDep) -> Ready:
    engine = runtime.engine
    state = runtime.readiness
    if time.monotonic() - state.checked_at > _PROBE_TTL_S:

        def probe() -> None:
            # A new sentence each time: a cached answer would not show that the model still runs.
            engine.translate_batch([f"Ready check {time.time_ns()}."], deadline=time.monotonic() + 30)

        try:
            await run_in_threadpool(probe)
            state.ok, state.reason = True, ""
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
            state.ok, state.reason = False, f"{type(exc).__name__}: {exc}"
        state.checked_at = time.monotonic()
    if not state.ok:
        raise ApiError(503, "not_ready", f"the model {engine.name!r} is not answering: {state.reason}")
    return Ready(status="ready", model=engine.name, device=engine.device)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics: the engine, HTTP requests, the job queue and webhooks (README: Monitoring)",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
