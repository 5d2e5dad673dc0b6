"""Typed dependencies: routes ask for what they need, tests override these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from models.scheduler import BatchingEngine
from service.config import Settings
from service.glossaries import GlossaryStore
from service.metrics import EngineMetrics
from service.pipeline import Pipeline


@dataclass
class Runtime:
    """What the app holds for its lifetime, built once by the app factory."""

    settings: Settings
    # Its engine is `engine`: every request's sentences meet in the engine worker's batches.
    pipeline: Pipeline
    engine: BatchingEngine
    glossaries: GlossaryStore
    metrics: EngineMetrics


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
