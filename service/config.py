"""Settings, from the environment (DUIYI_*) and the command line. Built once, in the app factory
or the CLI, and passed down; nothing reads the environment at import time."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from glossary.terms import VARIANTS
from models.engine import ENGINES
from models.specs import DEFAULT_MODEL, Family

# A list setting: in the environment, a JSON list (`["a.example.com","b.example.com"]`) or
# comma-separated (`a.example.com,b.example.com`); NoDecode hands the text to `_list_setting`
# instead of pydantic-settings' JSON decoding, whose failure is a traceback, not a setting's error.
StrList = Annotated[list[str], NoDecode]

_DEVICE = re.compile(r"auto|cpu|cuda(?::\d+)?")
# A host pattern with a port (`cms.example.com:8443`): hosts are matched without their port.
_WITH_PORT = re.compile(r"[^:]*:\d*")

# DUIYI_* variables that are not settings: the ones the project's own tests and tools read
# (tests/conftest.py, .ci/run). Any other DUIYI_* variable is a mistyped setting, refused
# (`unknown_variables`) rather than silently ignored.
TOOL_VARIABLES = frozenset({"DUIYI_SHARED", "DUIYI_TEST_POSTGRES", "DUIYI_CHROMIUM", "DUIYI_REQUIRE_POSTGRES"})

# The settings that are text (a name, a path, an address, a secret): empty, each is its default.
EMPTY_IS_DEFAULT = frozenset(
    {
        "model",
        "family",
        "engine",
        "device",
        "host",
        "log_level",
        "log_format",
        "glossary_dir",
        "data_dir",
        "database_url",
        "session_secret",
        "webhook_secret",
        "public_url",
    }
)


class Settings(BaseSettings):
    # allow_inf_nan=False: `inf` or `nan` is no duration, limit or ratio (a timeout of inf is none).
    model_config = SettingsConfigDict(env_prefix="DUIYI_", extra="ignore", allow_inf_nan=False)

    # Hugging Face hub id or local directory of the translation model.
    model: str = DEFAULT_MODEL
    # marian | nllb | m2m100; empty: recognised from the model's config.
    family: str | None = None
    # transformers | ctranslate2
    engine: str = "transformers"
    # auto (CUDA when available) | cpu | cuda | cuda:N
    device: str = "auto"
    # Cores the engine uses on the CPU (torch's threads; CTranslate2's workers); 0: every core.
    cpu_threads: int = Field(default=0, ge=0)
    host: str = "127.0.0.1"
    # 0: any free port.
    port: int = Field(default=8000, ge=0, le=65535)
    # Largest article accepted, in characters of text (all fields together).
    max_chars: int = Field(default=100_000, gt=0)
    # Largest uploaded file (XLIFF, TMX, TBX, CSV, an article file), in bytes.
    max_upload_bytes: int = Field(default=50_000_000, gt=0)
    # Variants (glossary.terms.VARIANTS) and glossaries when a request names none.
    default_targets: StrList = Field(default_factory=lambda: ["zh-Hans", "zh-Hant"])
    default_glossaries: StrList = Field(default_factory=lambda: ["news"])
    # Glossary files: every NAME.csv in this directory is glossary NAME, in place of a shipped one
    # of that name; seeded into the database where it lacks the name (service.glossaries).
    glossary_dir: Path | None = None
    # zh-TW with Taiwan vocabulary (OpenCC s2twp) rather than characters only (s2tw).
    tw_phrases: bool = True
    # zh-Hant with 「」 quotes instead of “”.
    hant_corner_quotes: bool = False
    max_batch_tokens: int = Field(default=8192, gt=0)
    max_batch_size: int = Field(default=64, gt=0)
    beam_size: int = Field(default=1, ge=1)
    # Output cap per sentence: ratio × source tokens + extra.
    max_length_ratio: float = Field(default=2.0, gt=0)
    max_length_extra: int = Field(default=10, ge=0)
    # Decode a sentence again with safer settings when its translation loops.
    redecode_loops: bool = True
    # Sentences that may wait for the engine; past it, 503 with Retry-After.
    max_queue: int = Field(default=4096, gt=0)
    # Greedy decoding in one running batch that sentences join and leave between decoding steps
    # (models.continuous; Marian, NLLB and M2M100 models on the transformers engine). Off: whole
    # batches only.
    continuous_batching: bool = True
    # On CUDA, the running batch's steps over static shapes, each captured once as a CUDA graph and
    # replayed (models.continuous). Off until measured on a GPU (bench/device-run.sh).
    cuda_graphs: bool = False
    # How long the engine worker waits for more sentences to fill a whole batch.
    max_wait_ms: float = Field(default=5.0, ge=0)
    # Recent translations remembered, so a repeated sentence is not decoded again.
    cache_size: int = Field(default=4096, ge=0)
    # A request's sentences not decoded by then are abandoned (504).
    request_timeout_s: float = Field(default=120.0, gt=0)
    # Python's logging level and uvicorn's, in any case: critical, error, warning, info, debug.
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Log lines as text, or one JSON object a line (for a log collector); request ids in both.
    log_format: Literal["text", "json"] = "text"

    # --- storage and jobs ---
    # Where the embedded SQLite database (and nothing else yet) lives.
    data_dir: Path = Field(default_factory=lambda: _default_data_dir())
    # SQLAlchemy URL; empty: SQLite in data_dir. PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    # Job runner threads inside `duiyi serve`; 0 leaves jobs to separate `duiyi worker` processes.
    runners: int = Field(default=2, ge=0)
    # Where `duiyi worker` serves its engine's Prometheus metrics (on DUIYI_HOST); 0: nowhere.
    # `duiyi serve` has them at /metrics on its own port.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Segments decoded and saved together; a runner that dies loses at most this much work.
    job_chunk_segments: int = Field(default=32, gt=0)
    # A runner renews its claim on a job this often / 3; a killed runner's job is taken over after this.
    # At least a second: below it the renewals hammer the database (every lease / 3), and a renewal
    # slower than two thirds of the lease hands a live runner's job to another.
    job_lease_s: float = Field(default=60.0, ge=1)
    # How often an idle runner (and the webhook dispatcher, at most every second) looks for work.
    job_poll_s: float = Field(default=1.0, gt=0)
    # Attempts ended by an error (the engine's, or a statement the database refused) after which a
    # job fails instead of being retried. A runner that died does not use one up: see below.
    job_max_attempts: int = Field(default=3, ge=1)
    # Runners lost with a job in a row (killed, or cut off from the database past their lease), none
    # of which saved a chunk of it, after which the job fails: an article that kills its process
    # each time. Higher than the attempts above, since a crash of a process with several jobs in hand
    # (out of memory, a restart) loses every one of their runners, and only one job is at fault.
    job_max_lost_runners: int = Field(default=10, ge=1)
    # Jobs queued or translating; past it, POST /v1/articles answers 503 with Retry-After.
    max_pending_jobs: int = Field(default=1000, gt=0)

    # --- API keys ---
    # Local use only: every request acts as an admin, and the service logs a warning.
    auth_disabled: bool = False
    # Per key (shared by the keys of one owner); 0 disables the limit. Past it: 429 with Retry-After.
    rate_limit_per_minute: float = Field(default=600.0, ge=0)
    # Requests a key may make at once, before the rate above spaces them out; 1: none at once. It
    # has no 0: a bucket of 0 would refuse every request (a disabled limit is a rate of 0).
    rate_limit_burst: int = Field(default=60, ge=1)

    # --- review web app ---
    # Signs the review app's session cookies; empty: a random secret per process (sessions end on
    # restart, and replicas behind a load balancer need one shared value).
    session_secret: str | None = None
    # Send the session cookie only over HTTPS (set behind a TLS-terminating proxy).
    session_https_only: bool = False
    # How long a review app sign-in lasts.
    session_max_age_s: int = Field(default=12 * 3600, gt=0)

    # --- webhooks ---
    # Host patterns callbacks may go to ("hooks.example.com", "*.example.com"); empty: no callbacks.
    webhook_allowed_hosts: StrList = Field(default_factory=list)
    # Allow callbacks to loopback and private addresses (a CMS on the same network).
    webhook_allow_private: bool = False
    # Signs webhooks when authentication is disabled (with keys, each key's own secret does).
    webhook_secret: str | None = None
    # Tries of one delivery (a redelivery starts a new round). With the base and cap below, the
    # retries of a delivery whose receiver stays down span about a day (15 to 30 hours, by the
    # jitter): waits of 5 s doubling to an hour, then about hourly, so a CMS that is down for
    # minutes, or overnight, still gets its events.
    webhook_max_attempts: int = Field(default=40, ge=1)
    # Neither may be 0: the tries would come at once, a dead receiver's 40 spent in seconds.
    webhook_backoff_base_s: float = Field(default=5.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    # Threads per process that send webhooks; each receiver (callback URL) gets one at a time.
    webhook_senders: int = Field(default=4, ge=1, le=64)
    # The service's address as clients see it, for absolute links in webhooks; empty: relative links.
    public_url: str = ""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_the_default(cls, data: object) -> object:
        """An empty (or blank) text setting is the default, as if unset, as DUIYI_FAMILY and
        DUIYI_DATABASE_URL always were: `DUIYI_DATA_DIR=` put the database in the current directory
        (Path("") is "."), `DUIYI_HOST=` listened on every interface. Numbers and switches are
        refused empty (not a number), lists are empty lists."""
        if not isinstance(data, dict):
            return data
        return {k: v for k, v in data.items() if not (k in EMPTY_IS_DEFAULT and isinstance(v, str) and not v.strip())}

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("default_targets", "default_glossaries", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _list_setting(cls, value: object) -> object:
        """A JSON list, or comma-separated names; blank items (`a,,b`, a trailing comma) dropped."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"not a JSON list ({exc.msg} at character {exc.pos}): write a JSON list of strings "
                    '(["a","b"]) or names separated by commas (a,b)'
                ) from None
        return text.split(",")

    @field_validator("default_targets", "default_glossaries", "webhook_allowed_hosts")
    @classmethod
    def _strip_items(cls, value: list[str]) -> list[str]:
        return [item.strip() for item in value if item.strip()]

    @field_validator("family", mode="before")
    @classmethod
    def _check_family(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        if not name:
            return None  # recognised from the model's config
        valid = [f.value for f in Family]
        if name not in valid:
            raise ValueError(f"unknown model family {value!r}; valid: {', '.join(valid)}, or empty (from the model)")
        return name

    @field_validator("engine", mode="before")
    @classmethod
    def _check_engine(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; valid: {', '.join(ENGINES)}")
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("device", mode="before")
    @classmethod
    def _check_device(cls, value: object) -> object:
        if isinstance(value, str) and not _DEVICE.fullmatch(value.strip().lower()):
            raise ValueError(f"unknown device {value!r}; valid: auto, cpu, cuda, or cuda:N (N: the GPU's index)")
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("default_targets")
    @classmethod
    def _check_targets(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant {', '.join(map(repr, unknown))}; valid: {', '.join(VARIANTS)}")
        if not value:
            raise ValueError(f"name at least one variant of {', '.join(VARIANTS)}")
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _check_host_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if "/" in pattern or "@" in pattern or any(c.isspace() for c in pattern):
                raise ValueError(
                    f"{pattern!r} is not a host pattern: name hosts (cms.example.com, *.example.com), not URLs"
                )
            if _WITH_PORT.fullmatch(pattern):
                raise ValueError(f"{pattern!r} has a port: name the host alone (any port is allowed)")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        """Empty, or an http(s) URL with a host and at most a path: links are this + `/v1/...`."""
        value = value.strip()
        if not value:
            return value
        try:
            parts = urlsplit(value)
            host, _port = parts.hostname, parts.port  # the port: a ValueError when not a number
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError(f"{value!r} is not an http(s) URL with a host, such as https://duiyi.example.com")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError(f"{value!r} has a query or fragment: give the address alone (a path is allowed)")
        return value

    @field_validator("data_dir", "glossary_dir", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        """`~` or `~user` leading a path is that home directory, as a shell would have made it: an
        env file read by systemd or Docker expands nothing, and `DUIYI_DATA_DIR=~/duiyi-data` was
        a folder named `~` in the current directory."""
        if not isinstance(value, (str, Path)) or not str(value).startswith("~"):
            return value
        try:
            return Path(value).expanduser()
        except RuntimeError:  # no HOME, and no such user
            raise ValueError(f"{value}: the home directory it names cannot be found; give the whole path") from None

    @field_validator("glossary_dir")
    @classmethod
    def _check_glossary_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @property
    def database(self) -> str:
        from service.storage.db import default_url

        return self.database_url or default_url(self.data_dir)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One message for each DUIYI_* variable of `environ` that is neither a setting nor one of
    TOOL_VARIABLES (in any case, as settings are read), with the closest setting's name."""
    settings = [name.upper() for name in Settings.model_fields]
    known = {*(f"DUIYI_{name}" for name in settings), *TOOL_VARIABLES}
    messages = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith("DUIYI_") or name in known:
            continue
        # Compared without the prefix, which every name shares.
        close = difflib.get_close_matches(name.removeprefix("DUIYI_"), settings, n=1, cutoff=0.6)
        hint = f"did you mean DUIYI_{close[0]}?" if close else "see the README's Configuration for the settings"
        messages.append(f"{variable} is not a setting of duiyi ({hint}); unset it")
    return messages


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "duiyi"
