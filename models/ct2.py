"""The CTranslate2 engine: the same Hugging Face model, converted once and run by CTranslate2
(int8 on CPU; float16/bfloat16 on GPU when its CUDA runtime is there).

The converted model is cached next to the model (`ctranslate2/<revision>-<quantization>`), or
under ~/.cache/duiyi when that place is read-only, and reused on every later start.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from models.batching import BatchPlan, output_cap
from models.engine import (
    DEFAULT_DECODE,
    DecodeOptions,
    ModelLoadError,
    Translation,
    brief,
    check_lengths,
    check_tokenizer_files,
    damaged_weights,
    decode_in_batches,
    load_failure,
    model_spec,
)
from models.specs import ModelSpec

log = logging.getLogger(__name__)


def _resolve(name_or_path: str) -> tuple[Path, str]:
    """A local directory for the model, and its revision (the hub commit, or a content hash)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(path.iterdir()):
            if item.is_file():
                stat = item.stat()
                digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return path, digest.hexdigest()[:16]
    from huggingface_hub import snapshot_download

    local = Path(snapshot_download(name_or_path))
    return local, local.name  # snapshots/<commit>


def _cache_dir(model_dir: Path, revision: str, quantization: str) -> Path:
    # In the hub cache (…/models--org--name/snapshots/<commit>) the model's own folder is two up.
    base = model_dir.parent.parent if model_dir.parent.name == "snapshots" else model_dir
    target = base / "ctranslate2" / f"{revision}-{quantization}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.parent / ".writable"
        probe.touch()
        probe.unlink()
        return target
    except OSError:
        key = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "duiyi" / "ctranslate2" / f"{key}-{revision}-{quantization}"


def convert(model_dir: Path, revision: str, quantization: str) -> Path:
    """Convert once; later calls find the result. Written to a temporary folder, then renamed, so
    an interrupted conversion never leaves a half model behind."""
    target = _cache_dir(model_dir, revision, quantization)
    if (target / "model.bin").is_file():
        return target
    from ctranslate2.converters import TransformersConverter
    from transformers.utils import logging as hf_logging

    # The converter loads the model with transformers, whose progress bar ("Loading weights") would
    # go to stderr whatever the log format or --no-progress, as the transformers engine keeps it off.
    hf_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        log.info("converting %s to CTranslate2 (%s) in %s", model_dir, quantization, target)
        TransformersConverter(str(model_dir)).convert(str(tmp / "model"), quantization=quantization, force=True)
        os.replace(tmp / "model", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CTranslate2Engine:
    """Implements models.engine.Engine with a ctranslate2.Translator."""

    def __init__(
        self, name: str, translator: Any, tokenizer: Any, spec: ModelSpec, device: str, max_source_tokens: int
    ) -> None:
        self.name = name
        self.translator = translator
        # Sub-batches of one call that CTranslate2 decodes side by side (its inter_threads).
        self.workers = max(1, int(translator.num_translators))
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.max_source_tokens = max_source_tokens
        if spec.src_lang:
            tokenizer.src_lang = spec.src_lang
        self._special = set(tokenizer.all_special_tokens)
        # A sentence is measured for segmentation, scheduling and batching: tokenize it once.
        self._counts = functools.lru_cache(maxsize=65_536)(self._count_uncached)

    @classmethod
    def load(
        cls,
        name_or_path: str,
        *,
        device: str = "auto",
        family: str | None = None,
        compute_type: str = "auto",
        cpu_threads: int = 0,
    ) -> CTranslate2Engine:
        """`cpu_threads`: on the CPU, how many sub-batches run side by side, one core each (0: every
        core this process may use)."""
        try:
            import ctranslate2
        except ImportError as exc:  # a dependency of duiyi, but an environment may lack it or break it
            raise ModelLoadError(
                f"cannot load translation model {name_or_path!r} for CTranslate2: the ctranslate2 package "
                f"cannot be imported ({brief(exc)}); install it into duiyi's Python environment "
                "(pip install 'ctranslate2>=4.5', a dependency of duiyi that reinstalling duiyi also brings), "
                "or run with --engine transformers"
            ) from exc
        try:
            from transformers import AutoConfig, AutoTokenizer

            model_dir, revision = _resolve(name_or_path)
            check_tokenizer_files(name_or_path, model_dir, engine="CTranslate2")
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            config = AutoConfig.from_pretrained(model_dir)
        except (OSError, ValueError, ImportError) as exc:
            raise load_failure(name_or_path, exc, engine="CTranslate2") from exc
        spec = model_spec(name_or_path, family, config, tokenizer)
        gpus = ctranslate2.get_cuda_device_count()
        want_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
        if want_gpu and gpus == 0:
            log.warning("CTranslate2 has no CUDA runtime here (device %r asked for): running on the CPU, int8", device)
            want_gpu = False
        ct2_device = "cuda" if want_gpu else "cpu"
        if compute_type == "auto":
            compute_type = (
                "bfloat16" if want_gpu and "bfloat16" in ctranslate2.get_supported_compute_types("cuda") else
                "float16" if want_gpu else "int8"
            )  # fmt: skip
        try:
            converted = convert(model_dir, revision, compute_type)
        except SafetensorError as exc:  # the model's own weights, not the conversion, are at fault
            raise damaged_weights(name_or_path, model_dir, exc, engine="CTranslate2") from exc
        except Exception as exc:  # whatever stops the conversion, the command says it in one line
            raise ModelLoadError(
                f"cannot convert translation model {name_or_path!r} to CTranslate2 ({compute_type}) in "
                f"{_cache_dir(model_dir, revision, compute_type)}: {brief(exc)} (the converted model is kept "
                "there, or under ~/.cache/duiyi where the model's folder is read-only); "
                "or run with --engine transformers"
            ) from exc
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        # On the CPU, one core per sub-batch and as many sub-batches as cores: with 2 cores, two
        # sub-batches side by side decoded 990-1,580 tokens/s against 740-940 for one batch on both
        # cores (docs/benchmarks.md), which CTranslate2's intra-op threads barely speed up at these
        # sizes. The weights are shared between the workers. On a GPU, one worker drives the device.
        workers = 1 if want_gpu else max(1, cpu_threads or _usable_cores())
        translator = ctranslate2.Translator(
            str(converted),
            device=ct2_device,
            device_index=index,
            compute_type=compute_type,
            inter_threads=workers,
            intra_threads=0 if want_gpu else 1,
        )
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        log.info(
            "loaded %s with CTranslate2 (%s, %s) on %s, %d worker(s)",
            name_or_path,
            spec.family.value,
            compute_type,
            ct2_device,
            workers,
        )
        return cls(name_or_path, translator, tokenizer, spec, f"{ct2_device}", limit)

    def _tokens(self, text: str) -> list[str]:
        ids = self.tokenizer(self.spec.source_prefix + text)["input_ids"]
        return list(self.tokenizer.convert_ids_to_tokens(ids))

    def count_tokens(self, text: str) -> int:
        return self._counts(text)

    def _count_uncached(self, text: str) -> int:
        return len(self.tokenizer(self.spec.source_prefix + text)["input_ids"])

    def translate_batch(
        self,
        sources: Sequence[str],
        *,
        options: DecodeOptions = DEFAULT_DECODE,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        deadline: float | None = None,
    ) -> list[Translation]:
        tokens = [self._tokens(s) for s in sources]
        check_lengths([len(t) for t in tokens], self.max_source_tokens)
        return decode_in_batches(
            [len(t) for t in tokens],
            lambda plan: self._run(plan, tokens, options),
            options=options,
            max_batch_tokens=max_batch_tokens,
            max_batch_size=max_batch_size,
            ceiling=self.max_source_tokens - 2,
            deadline=deadline,
        )

    def _run(self, plan: BatchPlan, tokens: list[list[str]], options: DecodeOptions) -> list[Translation]:
        batch = [tokens[i] for i in plan.indices]
        prefix = [[self.spec.forced_bos_token] for _ in batch] if self.spec.forced_bos_token else None
        caps = [
            output_cap(len(source), ratio=options.max_length_ratio, extra=options.max_length_extra,
                       ceiling=self.max_source_tokens - 2)
            for source in batch
        ]  # fmt: skip
        kwargs: dict[str, Any] = {}
        if options.beam_size == 1:
            # CTranslate2 caps a whole batch at once (max_decoding_length); its step callback stops
            # each row at its own cap instead, so a short sentence beside long ones stops costing
            # compute, as in the transformers engine (on 2 CPU cores: 222 → 403 tokens/s on mixed
            # lengths, docs/benchmarks.md). The forced language token is step 0 of a prefixed row.
            first = 1 if prefix else 0
            kwargs["callback"] = lambda step: step.step + 1 - first >= caps[step.batch_id]
        out = self.translator.translate_batch(
            batch,
            target_prefix=prefix,
            beam_size=options.beam_size,
            # The language prefix counts as decoded; positions stop at the model's limit.
            max_decoding_length=min(plan.max_new_tokens + (1 if prefix else 0), self.max_source_tokens - 1),
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            repetition_penalty=options.repetition_penalty,
            # Split among the workers; CTranslate2 sorts the rows by length before it splits, runs the
            # sub-batches side by side, and gives results (and the callback's batch_id) in input order.
            max_batch_size=math.ceil(len(batch) / self.workers),
            **kwargs,
        )
        results = []
        for source, result, cap in zip(batch, out, caps, strict=True):
            # Beam search runs every row to the batch's cap: hold each sentence to its own, as the
            # transformers engine does, so both engines give the same shapes of output.
            hyp = result.hypotheses[0][1:] if prefix else result.hypotheses[0]
            hyp = hyp[:cap]
            text = self.tokenizer.convert_tokens_to_string([t for t in hyp if t not in self._special])
            results.append(Translation(text=text.strip(), source_tokens=len(source), output_tokens=len(hyp)))
        return results
