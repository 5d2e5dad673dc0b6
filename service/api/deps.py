"""Typed dependencies: routes ask for what they need, tests override these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from models.scheduler import BatchingEngine
from service.auth import Limiter
from service.config import Settings
from service.glossaries import DatabaseGlossaries
from service.jobs.deliveries import Dispatcher
from service.jobs.runner import RunnerPool
from service.memory import TranslationMemory
from service.metrics import EngineMetrics
from service.pipeline import Pipeline
from service.storage.db import Database
from service.variants import VariantRule


@dataclass
class Readiness:
    """The last readiness probe: a real translation through the engine, redone at most every
    few seconds so /readyz stays cheap."""

    checked_at: float = 0.0  # time.monotonic(); 0: never
    ok: bool = False
    reason: str = "not probed yet"


@dataclass
class Runtime:
    """What the app holds for its lifetime, built once by the app factory."""

    settings: Settings
    # Its engine is `engine`: every request's sentences meet in the engine worker's batches.
    pipeline: Pipeline
    engine: BatchingEngine
    glossaries: DatabaseGlossaries
    metrics: EngineMetrics
    db: Database
    limiter: Limiter  # in the process (SQLite), or shared by every process (PostgreSQL)
    dispatcher: Dispatcher
    rules: dict[str, VariantRule]
    memory: TranslationMemory
    # None when DUIYI_RUNNERS=0 (separate `duiyi worker` processes translate the jobs).
    runners: RunnerPool | None = None
    readiness: Readiness = field(default_factory=Readiness)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
