"""Typed dependencies: routes ask for what they need, tests override these."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.glossaries import GlossaryStore
from service.pipeline import Pipeline


@dataclass
class Runtime:
    """What the app holds for its lifetime, built once by the app factory."""

    settings: Settings
    pipeline: Pipeline
    glossaries: GlossaryStore
    # One engine owns the device; requests take turns on it (cross-request batching is the
    # scheduler's job, see models/).
    engine_lock: threading.Lock


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
