"""Settings, from the environment (DUIYI_*) and the command line. Built once, in the app factory
or the CLI, and passed down; nothing reads the environment at import time."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.specs import DEFAULT_MODEL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUIYI_", extra="ignore")

    # Hugging Face hub id or local directory of the translation model.
    model: str = DEFAULT_MODEL
    # marian | nllb | m2m100; empty: recognised from the model's config.
    family: str | None = None
    engine: str = "transformers"
    # auto (CUDA when available) | cpu | cuda | cuda:N
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    # Largest article accepted, in characters of text (all fields together).
    max_chars: int = 100_000
    default_targets: list[str] = Field(default_factory=lambda: ["zh-Hans", "zh-Hant"])
    default_glossaries: list[str] = Field(default_factory=lambda: ["news"])
    # Extra glossaries: every NAME.csv in this directory is glossary NAME (overrides shipped ones).
    glossary_dir: Path | None = None
    # zh-TW with Taiwan vocabulary (OpenCC s2twp) rather than characters only (s2tw).
    tw_phrases: bool = True
    # zh-Hant with 「」 quotes instead of “”.
    hant_corner_quotes: bool = False
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    beam_size: int = 1
    # Output cap per sentence: ratio × source tokens + extra.
    max_length_ratio: float = 2.0
    max_length_extra: int = 10
    # Decode a sentence again with safer settings when its translation loops.
    redecode_loops: bool = True
    # Sentences that may wait for the engine; past it, 503 with Retry-After.
    max_queue: int = 4096
    # How long the engine worker waits for more sentences to fill a batch.
    max_wait_ms: float = 5.0
    # Recent translations remembered, so a repeated sentence is not decoded again.
    cache_size: int = 4096
    # A request's sentences not decoded by then are abandoned (504).
    request_timeout_s: float = 120.0
    log_level: str = "info"
