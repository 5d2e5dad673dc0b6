"""Translation engines: one protocol, and the transformers implementation of it.

Shaped like CTranslate2's Translator: resources in the constructor (`TransformersEngine.load`),
work options per call, keyword-only after the inputs, frozen results.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from safetensors import SafetensorError, safe_open

from models.batching import BatchPlan, plan_batches
from models.specs import Family, ModelSpec, UnknownFamilyError, config_families, detect_family, spec_for

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 1
    # Output cap per sentence: ratio × source tokens + extra, never above the model's limit.
    max_length_ratio: float = 2.0
    max_length_extra: int = 10
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0


DEFAULT_DECODE = DecodeOptions()


def is_greedy(options: DecodeOptions) -> bool:
    """Plain greedy decoding: the engines' own loops, no `generate` features needed."""
    return options.beam_size == 1 and not options.no_repeat_ngram_size and options.repetition_penalty == 1.0


def safer(options: DecodeOptions) -> DecodeOptions:
    """Settings for a second try at a sentence whose first decoding fell into a repetition loop:
    the same length cap, a wider beam, no repeated 3-grams, a repetition penalty."""
    return replace(options, beam_size=max(4, options.beam_size), no_repeat_ngram_size=3, repetition_penalty=1.3)


SAFE_DECODE = safer(DEFAULT_DECODE)


@dataclass(frozen=True)
class Translation:
    text: str
    source_tokens: int
    output_tokens: int


class Engine(Protocol):
    """What the service needs of an engine. Both duiyi engines implement it."""

    name: str  # model id or path, for logs and responses
    spec: ModelSpec
    device: str
    max_source_tokens: int  # longest source the model accepts, prefix included

    def count_tokens(self, text: str) -> int: ...

    def translate_batch(
        self,
        sources: Sequence[str],
        *,
        options: DecodeOptions = DEFAULT_DECODE,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        deadline: float | None = None,
    ) -> list[Translation]:
        """Translations of `sources`, in order. `deadline` (time.monotonic()): raise
        DeadlineExceeded rather than start decoding after it."""
        ...


class DeadlineExceeded(TimeoutError):
    """The caller's deadline passed before its sentences were decoded."""


class SourceTooLong(ValueError):
    """A source is longer than the model accepts. The pipeline cuts sentences to the model's limit
    before they get here; one that still arrives over it is refused whole, with this, rather than
    truncated (text silently lost) or run (the model's position table overflows: an IndexError)."""


def check_lengths(lengths: Sequence[int], limit: int) -> None:
    """Raise SourceTooLong when any source measures more than `limit` tokens (prefix included)."""
    over = [n for n in lengths if n > limit]
    if over:
        raise SourceTooLong(
            f"{len(over)} source(s) longer than the model's limit of {limit} tokens "
            f"(the longest {max(over)}); split them before translating"
        )


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says which and what to do."""


def brief(exc: BaseException) -> str:
    """An exception's cause in brief, one line. transformers' messages run over several lines, the
    first sometimes ending in "one of:"; the first, without its closing punctuation, is the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(" :.") if lines else type(exc).__name__


def load_failure(name_or_path: str, exc: BaseException, *, engine: str = "") -> ModelLoadError:
    """The one line that says a model could not be loaded: which model, from where, the cause in
    brief, and what to do. One line because the command line prints it as its only line."""
    path = Path(name_or_path).expanduser()
    where = "the Hugging Face hub (is this machine offline?)"
    reason = brief(exc)
    advice = (
        "point duiyi at a local copy of the model with --model PATH or DUIYI_MODEL=PATH "
        "(a directory holding config.json and the tokenizer files)"
    )
    if path.is_dir():
        where = "the directory"
        if not (path / "config.json").is_file():
            reason = "it holds no config.json, so it is not a saved model"
        else:
            # A saved model that does not load: a file of it is missing or damaged, not the path.
            broken = _unreadable_json(path) if isinstance(exc, ValueError) else None
            if broken is not None:
                reason = f"{broken} is damaged: it is not valid JSON ({reason})"
            if isinstance(exc, ImportError):
                advice = "install what it names into duiyi's Python environment"
            else:
                advice = _fetch_again(name_or_path, hub=False)
    elif path.exists():
        where, reason = "the path", "it is a file, not a model directory"
    elif name_or_path.startswith(("/", ".", "~")):
        where, reason = "the directory", "no such directory"
    return ModelLoadError(
        f"cannot load translation model {name_or_path!r}{f' for {engine}' if engine else ''} from {where}: "
        f"{reason}; {advice}"
    )


def _unreadable_json(model_dir: Path) -> Path | None:
    """The first JSON file of a model directory that does not parse: transformers' JSON errors
    ("Unterminated string starting at …") do not say which file they were reading."""
    for file in sorted(model_dir.glob("*.json")):
        try:
            json.loads(file.read_bytes())
        except ValueError:
            return file
        except OSError:
            continue
    return None


def _fetch_again(name_or_path: str, *, hub: bool) -> str:
    """What to do about a model whose own files are missing or damaged: fetch them again, whole."""
    if hub:
        return f"download the model again (hf download {name_or_path} --force-download)"
    return (
        "copy the model directory again, whole (config.json, the weights and the tokenizer files), "
        "or download the model again (hf download REPO --local-dir DIR)"
    )


def local_model_dir(name_or_path: str) -> Path | None:
    """The model directory `name_or_path` names on this machine (`~` expanded), or None when it
    names no directory here (a hub id)."""
    path = Path(name_or_path).expanduser()
    return path if path.is_dir() else None


def _hub_snapshot(name_or_path: str) -> Path | None:
    """The hub cache's copy of a model named by its hub id, where there is one."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name_or_path, "config.json")
    except (ValueError, OSError):  # an id the hub refuses (HFValidationError): no cached copy to name
        return None
    return Path(found).parent if isinstance(found, str) else None


def damaged_weights(
    name_or_path: str, model_dir: Path | None, exc: BaseException, *, engine: str = ""
) -> ModelLoadError:
    """A weights file safetensors cannot read (cut short, empty, or not safetensors at all): the
    one line names the file, found by opening each of the model's .safetensors files in turn."""
    hub = local_model_dir(name_or_path) is None
    folder = model_dir or (_hub_snapshot(name_or_path) if hub else None)
    damaged = None
    for file in sorted(folder.glob("*.safetensors")) if folder else ():
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError):
            damaged = file
            break
    what = f"its weights file {damaged}" if damaged else "a weights file of it"
    return ModelLoadError(
        f"cannot load translation model {name_or_path!r}{f' for {engine}' if engine else ''}: {what} is damaged, "
        f"cut short or not a safetensors file ({brief(exc)}); {_fetch_again(name_or_path, hub=hub)}"
    )


# The files each tokenizer class of the families duiyi drives cannot do without (each entry: one of
# these files). Without them transformers fails with a TypeError that names no file (Marian,
# M2M100), or, for NLLB, builds a tokenizer of its 9 special tokens that reads every word as <unk>.
_TOKENIZER_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "MarianTokenizer": (("source.spm",), ("target.spm",), ("vocab.json",)),
    "NllbTokenizer": (("tokenizer.json", "sentencepiece.bpe.model"),),
    "NllbTokenizerFast": (("tokenizer.json", "sentencepiece.bpe.model"),),
    "M2M100Tokenizer": (("vocab.json",), ("sentencepiece.bpe.model",)),
}
# The tokenizer transformers takes for a model whose tokenizer_config.json names none.
_DEFAULT_TOKENIZER = {"marian": "MarianTokenizer", "m2m_100": "M2M100Tokenizer"}


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_tokenizer_files(name_or_path: str, model_dir: Path, *, engine: str = "") -> None:
    """ModelLoadError naming the tokenizer files a model directory lacks, before transformers tries
    to build the tokenizer without them. Checked beforehand, not by mapping the error: the error
    is a bare TypeError (a path that is None) that names no file and could come from anywhere,
    and NLLB's tokenizer raises nothing at all. A class duiyi does not know is left to transformers."""
    settings = _json_object(model_dir / "tokenizer_config.json")
    tokenizer_class = settings.get("tokenizer_class") if settings else None
    if not tokenizer_class:
        config = _json_object(model_dir / "config.json") or {}
        tokenizer_class = _DEFAULT_TOKENIZER.get(str(config.get("model_type", "")))
    needs = _TOKENIZER_FILES.get(str(tokenizer_class), ())
    if tokenizer_class == "MarianTokenizer" and settings and settings.get("separate_vocabs"):
        needs = (*needs, ("target_vocab.json",))
    missing = [files for files in needs if not any((model_dir / f).is_file() for f in files)]
    if not missing:
        return
    named = " and ".join(" or ".join(files) for files in missing)
    told = "" if settings else " (it holds no tokenizer_config.json to name another tokenizer)"
    raise ModelLoadError(
        f"cannot load translation model {name_or_path!r}{f' for {engine}' if engine else ''}: its tokenizer "
        f"({tokenizer_class}) needs {named}, which the directory {model_dir} does not hold{told}; "
        f"{_fetch_again(name_or_path, hub=local_model_dir(name_or_path) is None)}"
    )


def model_spec(name_or_path: str, family: str | None, config: Any, tokenizer: Any) -> ModelSpec:
    """The spec of the family named, else of the one the loaded config shows; `ModelLoadError`
    (one line, as `load_failure`'s) for a model of no family duiyi knows, such as a BART or T5, and
    for a family named that its config contradicts (the wrong prompt and forced tokens: every
    translation would be wrong). A family may be named for a model whose config shows none duiyi
    knows, or to tell NLLB from M2M100 where the tokenizer does not."""
    tokenizer_class = type(tokenizer).__name__
    try:
        if not family:
            return spec_for(detect_family(config, tokenizer_class))
        spec = spec_for(family)
    except UnknownFamilyError as exc:
        raise ModelLoadError(f"cannot use translation model {name_or_path!r}: {exc}") from exc
    possible = config_families(config, tokenizer_class)
    if possible and spec.family not in possible:
        shown = " or ".join(sorted(f.value for f in possible))
        model_type = getattr(config, "model_type", "")
        raise ModelLoadError(
            f"setting family (DUIYI_FAMILY / --family): translation model {name_or_path!r} is of family {shown} "
            f"(its config's model_type {model_type!r}, tokenizer {tokenizer_class}), not {spec.family.value}; "
            f"leave the family unset to take it from the model, or name {shown}"
        )
    return spec


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"setting device (DUIYI_DEVICE / --device): {device!r} was asked for but CUDA is not available "
            "here; use cpu, or auto (CUDA where there is one)"
        )
    return device


def _pick_dtype(device: str) -> torch.dtype:
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def decode_in_batches(
    lengths: Sequence[int],
    run: Callable[[BatchPlan], list[Translation]],
    *,
    options: DecodeOptions,
    max_batch_tokens: int,
    max_batch_size: int,
    ceiling: int,
    deadline: float | None,
) -> list[Translation]:
    """What both engines' translate_batch do around their own decoding: plan length-sorted
    batches, stop at the deadline, put each batch's results back in the callers' order."""
    plans = plan_batches(
        lengths,
        max_batch_tokens=max_batch_tokens,
        max_batch_size=max_batch_size,
        ratio=options.max_length_ratio,
        extra=options.max_length_extra,
        ceiling=ceiling,
        beams=options.beam_size,
    )
    results: list[Translation | None] = [None] * len(lengths)
    for plan in plans:
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("the deadline passed before decoding finished")
        for i, result in zip(plan.indices, run(plan), strict=True):
            results[i] = result
    return [r for r in results if r is not None]


class RowLengthCap:
    """Logits processor: a row that has used its own output cap may only emit EOS.

    `generate` caps a whole batch at one `max_new_tokens`; this keeps each sentence to the cap
    of its own length, so a short sentence in a batch of long ones cannot loop for long.
    """

    def __init__(self, caps: list[int], prompt_len: int, eos_token_id: int, num_beams: int) -> None:
        import torch

        self.caps = torch.tensor(caps).repeat_interleave(num_beams)
        self.prompt_len = prompt_len
        self.eos = eos_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_len
        over = (self.caps.to(scores.device) <= generated).nonzero().flatten()
        if over.numel():
            scores[over] = float("-inf")
            scores[over, self.eos] = 0.0
        return scores


class TransformersEngine:
    """`AutoModelForSeq2SeqLM` + `AutoTokenizer`, from a hub id or a local directory."""

    def __init__(self, name: str, model: Any, tokenizer: Any, spec: ModelSpec, device: str) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        # A fast (Rust) tokenizer keeps its padding setting as state and may not be used from two
        # threads at once: request threads count tokens (unpadded) while the engine worker encodes
        # padded batches, and an interleaving leaves a batch unpadded or raises "Already borrowed".
        self._tokenizer_lock = threading.Lock()
        self.spec = spec
        self.device = device
        limit = getattr(model.config, "max_position_embeddings", 512) or 512
        self.max_source_tokens = int(min(limit, getattr(tokenizer, "model_max_length", limit) or limit))
        # Decoder positions: the start token, the output, and the step that emits EOS fit the limit.
        self.max_output_tokens = int(limit) - 2
        eos = model.generation_config.eos_token_id
        self._eos = int(eos[0] if isinstance(eos, list) else eos)
        self._forced_bos = tokenizer.convert_tokens_to_ids(spec.forced_bos_token) if spec.forced_bos_token else None
        gen = model.generation_config
        self._start = int(model.config.decoder_start_token_id)
        # Tokens never to decode: padding, and single-token bad words (opus-mt bans its pad id).
        banned = {int(gen.pad_token_id)} if gen.pad_token_id is not None else set()
        banned |= {int(w[0]) for w in (gen.bad_words_ids or []) if len(w) == 1}
        self._suppress = sorted(banned - {self._eos})
        # A sentence is measured for segmentation, scheduling and batching: tokenize it once.
        self._counts = functools.lru_cache(maxsize=65_536)(self._count_uncached)
        # transformers ≥ 5.2x names the decoder cache `cache`; earlier 5.x `past_key_values`.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        if spec.src_lang:
            tokenizer.src_lang = spec.src_lang

    @classmethod
    def load(
        cls, name_or_path: str, *, device: str = "auto", family: str | None = None, cpu_threads: int = 0
    ) -> TransformersEngine:
        """Load a model; `ModelLoadError` with an actionable message when that is impossible.
        `cpu_threads`: on the CPU, torch's intra-op threads (0: torch's default, every core)."""
        device = _pick_device(device)
        if device == "cpu" and cpu_threads > 0:
            import torch

            torch.set_num_threads(cpu_threads)  # process-wide: one engine per process
        # A path given with `~` (the shell did not expand it, or it came from DUIYI_MODEL) is a path:
        # transformers would take it for a hub id, and refuse it as one.
        model_dir = local_model_dir(name_or_path)
        source = str(model_dir) if model_dir else name_or_path
        if model_dir is not None:
            check_tokenizer_files(name_or_path, model_dir)
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=_pick_dtype(device))
        except SafetensorError as exc:
            raise damaged_weights(name_or_path, model_dir, exc) from exc
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            raise load_failure(name_or_path, exc) from exc
        spec = model_spec(name_or_path, family, model.config, tokenizer)
        model = model.to(device).eval()
        log.info("loaded %s (%s) on %s", name_or_path, spec.family.value, device)
        return cls(name_or_path, model, tokenizer, spec, device)

    def count_tokens(self, text: str) -> int:
        return self._counts(text)

    def _count_uncached(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self.tokenizer(self.spec.source_prefix + text)["input_ids"])

    def encode(self, sources: Sequence[str]) -> Any:
        """Sources (with the family's prefix) as one padded batch of tensors on the host."""
        texts = [self.spec.source_prefix + s for s in sources]
        with self._tokenizer_lock:
            return self.tokenizer(texts, return_tensors="pt", padding=True, truncation=False)

    def decode(self, rows: Any) -> list[str]:
        """Token rows back to text, special tokens dropped."""
        with self._tokenizer_lock:
            return list(self.tokenizer.batch_decode(rows, skip_special_tokens=True))

    def translate_batch(
        self,
        sources: Sequence[str],
        *,
        options: DecodeOptions = DEFAULT_DECODE,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        deadline: float | None = None,
    ) -> list[Translation]:
        lengths = [self.count_tokens(s) for s in sources]
        check_lengths(lengths, self.max_source_tokens)
        return decode_in_batches(
            lengths,
            lambda plan: self._generate([sources[i] for i in plan.indices], plan, options),
            options=options,
            max_batch_tokens=max_batch_tokens,
            max_batch_size=max_batch_size,
            ceiling=self.max_output_tokens,
            deadline=deadline,
        )

    def _generated(self, row: list[int]) -> int:
        """Tokens the model decoded for one row: after the decoder start (and the forced language
        token), up to its EOS."""
        tokens = row[1:]
        if self._forced_bos is not None and tokens[:1] == [self._forced_bos]:
            tokens = tokens[1:]
        return tokens.index(self._eos) if self._eos in tokens else len(tokens)

    def _generate(self, batch: list[str], plan: BatchPlan, options: DecodeOptions) -> list[Translation]:
        enc = {k: v.to(self.device) for k, v in self.encode(batch).items()}
        source_tokens = enc["attention_mask"].sum(dim=1).tolist()
        caps = [
            min(plan.max_new_tokens, max(1, int(n * options.max_length_ratio) + options.max_length_extra))
            for n in source_tokens
        ]
        if is_greedy(options):
            rows = self._greedy(enc, caps)
            texts_out = self.decode(rows)
            counts = [len(r) for r in rows]
        else:
            texts_out, counts = self._beam(enc, caps, plan, options)
        return [
            Translation(text=t.strip(), source_tokens=int(n), output_tokens=c)
            for t, n, c in zip(texts_out, source_tokens, counts, strict=True)
        ]

    def _beam(
        self, enc: dict[str, Any], caps: list[int], plan: BatchPlan, options: DecodeOptions
    ) -> tuple[list[str], list[int]]:
        """Beam search (and penalties) through `generate`."""
        import torch
        from transformers import LogitsProcessorList

        # The decoder prompt is the start token, plus the forced language token for NLLB; generate
        # counts that token and the final EOS among its new tokens, so both get room of their own.
        prompt_len = 1
        kwargs: dict[str, Any] = {}
        if self._forced_bos is not None:
            kwargs["forced_bos_token_id"] = self._forced_bos
            prompt_len = 2
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=plan.max_new_tokens + prompt_len,
                num_beams=options.beam_size,
                do_sample=False,
                no_repeat_ngram_size=options.no_repeat_ngram_size or None,
                repetition_penalty=options.repetition_penalty if options.repetition_penalty != 1.0 else None,
                logits_processor=LogitsProcessorList([RowLengthCap(caps, prompt_len, self._eos, options.beam_size)]),
                **kwargs,
            )
        texts_out = self.decode(out)
        return texts_out, [self._generated(row.tolist()) for row in out]

    def _greedy(self, enc: dict[str, Any], caps: list[int]) -> list[list[int]]:
        """Greedy decoding in which a finished sentence leaves the batch at once: its rows of the
        encoder output, the mask and the KV cache are dropped, so it stops costing compute
        (`generate` keeps computing finished rows until the longest is done)."""
        import torch
        from transformers import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        model = self.model
        batch = int(enc["input_ids"].shape[0])
        with torch.inference_mode():
            hidden = model.get_encoder()(**enc).last_hidden_state
            mask = enc["attention_mask"]
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            alive = torch.arange(batch, device=self.device)
            limit = torch.tensor(caps, device=self.device)
            current = torch.full((batch, 1), self._start, dtype=torch.long, device=self.device)
            rows: list[list[int]] = [[] for _ in range(batch)]
            step = 0
            if self._forced_bos is not None:
                # The language token is forced, not decoded: feed it as the second prompt token.
                current = torch.cat([current, torch.full_like(current, self._forced_bos)], dim=1)
            while alive.numel():
                logits = model(
                    encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                    attention_mask=mask,
                    decoder_input_ids=current,
                    use_cache=True,
                    **{self._cache_arg: cache},
                ).logits[:, -1, :]
                if self._suppress:
                    logits[:, self._suppress] = float("-inf")
                chosen = logits.argmax(dim=-1)
                chosen = torch.where(limit[alive] <= step, torch.full_like(chosen, self._eos), chosen)
                done = chosen == self._eos
                for row, token, finished in zip(alive.tolist(), chosen.tolist(), done.tolist(), strict=True):
                    if not finished:
                        rows[row].append(token)
                step += 1
                if bool(done.any()):
                    keep = (~done).nonzero().flatten()
                    alive, hidden, mask, chosen = alive[keep], hidden[keep], mask[keep], chosen[keep]
                    cache.batch_select_indices(keep)
                current = chosen[:, None]
        return rows


ENGINES = ("transformers", "ctranslate2")


def load_engine(
    name_or_path: str,
    *,
    engine: str = "transformers",
    device: str = "auto",
    family: str | None = None,
    cpu_threads: int = 0,
) -> Engine:
    """The engine named by the settings, loaded; ModelLoadError with an actionable message if not.
    `cpu_threads`: cores the engine uses on the CPU (0: every core this process may use)."""
    if cpu_threads < 0:
        raise ModelLoadError(f"cpu_threads must be 0 (every core) or more, not {cpu_threads}")
    if engine == "transformers":
        return TransformersEngine.load(os.fspath(name_or_path), device=device, family=family, cpu_threads=cpu_threads)
    if engine == "ctranslate2":
        from models.ct2 import CTranslate2Engine

        return CTranslate2Engine.load(os.fspath(name_or_path), device=device, family=family, cpu_threads=cpu_threads)
    raise ModelLoadError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


__all__ = [
    "SAFE_DECODE",
    "DecodeOptions",
    "Engine",
    "Family",
    "ModelLoadError",
    "SourceTooLong",
    "TransformersEngine",
    "Translation",
    "load_engine",
    "safer",
]
