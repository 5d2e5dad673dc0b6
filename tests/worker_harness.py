"""A `duiyi worker` process for the multi-process job tests: the same `run_worker` the command
runs, with the engine wrapped so that every sentence it is asked to decode is appended (and
fsynced) to a log file before decoding, optionally slowed so a test can kill it mid-job.

    python -m tests.worker_harness LOG [DELAY_S]     (settings from DUIYI_* in the environment)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.engine import Engine, Translation, load_engine
from service.config import Settings
from service.jobs.worker import run_worker, stop_on_signals


class RecordingEngine:
    """The real engine, with a record of what it was asked to decode (calls counted from outside the process)."""

    def __init__(self, inner: Engine, log: Path, delay_s: float) -> None:
        self.inner = inner
        self.log = log
        self.delay_s = delay_s

    def translate_batch(self, sources: Sequence[str], **kwargs: Any) -> list[Translation]:
        with self.log.open("a", encoding="utf-8") as f:
            for source in sources:
                f.write(json.dumps(source) + "\n")
            f.flush()
            os.fsync(f.fileno())
        time.sleep(self.delay_s)
        return self.inner.translate_batch(sources, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main() -> None:
    log, delay = Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    settings = Settings()
    engine = RecordingEngine(load_engine(settings.model, device="cpu"), log, delay)
    stop = stop_on_signals()
    ready = Path(f"{log}.ready")
    run_worker(settings, engine, stop, runners=1, on_ready=ready.touch)  # type: ignore[arg-type]


if __name__ == "__main__":
    threading.current_thread().name = "harness"
    main()
