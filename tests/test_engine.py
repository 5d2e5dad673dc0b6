"""The transformers engine on tiny models of both families, loaded through the production path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.batching import output_cap, plan_batches
from models.engine import DecodeOptions, ModelLoadError, TransformersEngine, load_engine
from models.specs import Family, UnknownFamilyError, detect_family, spec_for


def test_family_recognised_from_config(engines: dict) -> None:
    assert engines["marian"].spec.family is Family.MARIAN
    assert engines["marian"].spec.source_prefix == ">>cmn_Hans<< "
    assert engines["nllb"].spec.family is Family.NLLB
    assert engines["nllb"].spec.forced_bos_token == "zho_Hans"


def test_family_can_be_named(tiny_dirs: dict[str, Path]) -> None:
    engine = load_engine(str(tiny_dirs["marian"]), device="cpu", family="marian")
    assert engine.spec is spec_for("marian")
    with pytest.raises(UnknownFamilyError, match="valid: marian, nllb, m2m100"):
        spec_for("gpt")
    with pytest.raises(UnknownFamilyError, match="--family"):
        detect_family(type("C", (), {"model_type": "t5"})())


def test_marian_prefix_and_nllb_language_tokens_reach_the_model(engines: dict) -> None:
    marian = engines["marian"]
    ids = marian.tokenizer(marian.spec.source_prefix + "Hello.")["input_ids"]
    assert marian.tokenizer.convert_ids_to_tokens(ids)[0] == ">>cmn_Hans<<"
    nllb = engines["nllb"]
    ids = nllb.tokenizer("Hello.")["input_ids"]
    assert "eng_Latn" in nllb.tokenizer.convert_ids_to_tokens(ids)


def test_batches_are_length_sorted_and_within_budget() -> None:
    lengths = [30, 5, 12, 5, 40, 7, 22, 9]
    plans = plan_batches(lengths, max_batch_tokens=150, max_batch_size=3, ratio=1.5, extra=5, ceiling=200)
    order = [i for p in plans for i in p.indices]
    assert sorted(order) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == sorted(lengths)
    for plan in plans:
        assert len(plan.indices) <= 3
        assert plan.padded_tokens <= 150 or len(plan.indices) == 1
        assert plan.max_new_tokens == output_cap(plan.max_source_tokens, ratio=1.5, extra=5, ceiling=200)


def test_beam_search_batches_count_every_hypothesis() -> None:
    """With beam 4 each sentence is four decoder rows: a quarter as many sentences fit the budget."""
    common: dict[str, Any] = {"max_batch_tokens": 400, "max_batch_size": 64, "ratio": 1.0, "extra": 0, "ceiling": 100}
    greedy = plan_batches([10] * 40, **common)
    beam = plan_batches([10] * 40, **common, beams=4)
    assert [len(p.indices) for p in greedy] == [20, 20]
    assert [len(p.indices) for p in beam] == [5] * 8
    assert all(p.padded_tokens == 400 for p in greedy + beam)


@pytest.mark.parametrize("family", ["marian", "nllb"])
def test_one_decoding_per_batch_not_per_sentence(engines: dict, family: str) -> None:
    engine: TransformersEngine = engines[family]
    calls: list[int] = []
    real = engine._generate

    def counting(batch: list[str], *args: object, **kwargs: object) -> object:
        calls.append(len(batch))
        return real(batch, *args, **kwargs)  # type: ignore[arg-type]

    engine._generate = counting  # type: ignore[method-assign,assignment]
    try:
        sources = [f"Sentence number {i} is about Japan and the alliance." for i in range(10)] + ["Short."]
        results = engine.translate_batch(sources, max_batch_size=64)
    finally:
        del engine._generate
    assert len(results) == len(sources)
    assert calls == [len(sources)]
    assert all(r.text for r in results)


@pytest.mark.parametrize("family", ["marian", "nllb"])
def test_output_length_is_capped_per_sentence(engines: dict, family: str) -> None:
    engine = engines[family]
    options = DecodeOptions(max_length_ratio=0.5, max_length_extra=2)
    sources = ["A very long sentence " * 8, "Short."]
    results = engine.translate_batch(sources, options=options)
    for result in results:
        assert result.output_tokens <= int(result.source_tokens * 0.5) + 2


def test_results_come_back_in_input_order(engines: dict) -> None:
    engine = engines["marian"]
    sources = ["Long sentence about the alliance and the region.", "Hi.", "Medium sentence here."]
    together = engine.translate_batch(sources)
    alone = [engine.translate_batch([s])[0] for s in sources]
    assert [r.source_tokens for r in together] == [r.source_tokens for r in alone]


def test_missing_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        TransformersEngine.load(str(tmp_path / "nope"), device="cpu")
    message = str(info.value)
    assert "nope" in message and "--model PATH" in message and "DUIYI_MODEL" in message
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message  # the command line prints it as its one line


def test_ctranslate2_converts_once_and_caches_next_to_the_model(
    tiny_dirs: dict[str, Path], all_engines: dict, caplog: pytest.LogCaptureFixture
) -> None:
    assert all_engines[("ctranslate2", "marian")].spec.family is Family.MARIAN
    cached = list((tiny_dirs["marian"] / "ctranslate2").glob("*-int8"))
    assert len(cached) == 1 and (cached[0] / "model.bin").is_file()
    stamp = (cached[0] / "model.bin").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="models.ct2"):
        again = load_engine(str(tiny_dirs["marian"]), engine="ctranslate2", device="cpu")
    assert (cached[0] / "model.bin").stat().st_mtime_ns == stamp
    assert not any("converting" in r.message for r in caplog.records)
    assert again.translate_batch(["Hello."])[0].source_tokens == again.count_tokens("Hello.")


def test_ctranslate2_falls_back_to_cpu_with_a_clear_line(
    tiny_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU for CTranslate2")
    with caplog.at_level("WARNING", logger="models.ct2"):
        engine = load_engine(str(tiny_dirs["nllb"]), engine="ctranslate2", device="cuda")
    assert engine.device == "cpu"
    assert any("running on the CPU" in r.message for r in caplog.records)


def test_unknown_engine_names_the_valid_ones(tiny_dirs: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="valid: transformers, ctranslate2"):
        load_engine(str(tiny_dirs["marian"]), engine="onnx")


@pytest.mark.parametrize("family", ["marian", "nllb"])
def test_both_engines_cap_output_the_same_way(all_engines: dict, family: str) -> None:
    options = DecodeOptions(max_length_ratio=0.5, max_length_extra=2)
    sources = ["A very long sentence " * 8, "Short."]
    for kind in ("transformers", "ctranslate2"):
        results = all_engines[(kind, family)].translate_batch(sources, options=options)
        assert [r.source_tokens for r in results] == [all_engines[(kind, family)].count_tokens(s) for s in sources]
        assert all(r.output_tokens <= int(r.source_tokens * 0.5) + 2 for r in results), kind


@pytest.mark.parametrize("family", ["marian", "nllb"])
def test_pruned_greedy_decoding_matches_generate(engines: dict, family: str) -> None:
    """The greedy loop that drops finished sentences gives what `generate` gives."""
    from models.batching import BatchPlan

    engine: TransformersEngine = engines[family]
    sources = ["Hello world.", "A much longer sentence that keeps going, and going, and going on.", "Short", "Okay."]
    greedy = engine.translate_batch(sources)
    enc = engine.tokenizer([engine.spec.source_prefix + s for s in sources], return_tensors="pt", padding=True)
    lengths = enc["attention_mask"].sum(dim=1).tolist()
    caps = [min(int(n * 2.0) + 10, engine.max_source_tokens) for n in lengths]
    texts, counts = engine._beam(dict(enc), caps, BatchPlan(tuple(range(4)), max(lengths), max(caps)), DecodeOptions())
    assert [g.text for g in greedy] == [t.strip() for t in texts]
    assert [g.output_tokens for g in greedy] == counts


def test_tokenizer_is_shared_safely_between_request_threads_and_the_worker(engines: dict, family: str) -> None:
    """Request threads count tokens (unpadded) while the worker encodes padded batches. A fast
    tokenizer keeps padding as state: unguarded, a count between the worker's setting of padding and
    its encoding leaves the batch ragged ("Unable to create tensor"), or raises "Already borrowed"."""
    import sys
    import threading

    engine = engines[family]
    sources = [f"Sentence {i} " + "about the alliance " * (i % 7) for i in range(20)]
    done = threading.Event()
    failures: list[Exception] = []

    def count(k: int) -> None:
        i = 0
        while not done.is_set():
            i += 1
            try:
                engine._count_uncached(f"Request {k} sentence {i} about the alliance")
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, as a loaded server does
    counters = [threading.Thread(target=count, args=(k,)) for k in range(4)]
    try:
        for t in counters:
            t.start()
        for _ in range(300):
            assert engine.encode(sources)["input_ids"].shape[0] == len(sources)
    finally:
        done.set()
        for t in counters:
            t.join()
        sys.setswitchinterval(interval)
    assert failures == []


def test_ctranslate2_on_cpu_splits_a_batch_among_its_workers(tiny_dirs: dict[str, Path], family: str) -> None:
    """One worker per core, each decoding a sub-batch: results come back in input order, each row
    held to its own output cap (the step callback's batch_id is the row's place in the call), the
    same as one sentence at a time."""
    import os

    from models.ct2 import CTranslate2Engine

    default = CTranslate2Engine.load(str(tiny_dirs[family]), device="cpu")
    assert default.workers == default.translator.num_translators == len(os.sched_getaffinity(0))
    engine = load_engine(str(tiny_dirs[family]), engine="ctranslate2", device="cpu", cpu_threads=3)
    assert isinstance(engine, CTranslate2Engine)
    assert engine.translator.num_translators == 3
    sources = [f"Sentence {i} " + "about the alliance and Futenma " * (i % 5) for i in range(12)]
    options = DecodeOptions(max_length_ratio=0.5, max_length_extra=1)
    split = engine.translate_batch(sources, options=options)
    alone = [engine.translate_batch([s], options=options)[0] for s in sources]
    assert split == alone
    caps = [output_cap(engine.count_tokens(s), ratio=0.5, extra=1, ceiling=engine.max_source_tokens) for s in sources]
    assert [r.output_tokens for r in split] == caps  # the tiny models never stop early
    assert len(set(caps)) > 3


def test_cpu_threads_sets_the_cores_each_engine_uses(tiny_dirs: dict[str, Path]) -> None:
    import torch

    from models.ct2 import CTranslate2Engine

    before = torch.get_num_threads()
    try:
        load_engine(str(tiny_dirs["marian"]), device="cpu", cpu_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    engine = load_engine(str(tiny_dirs["marian"]), engine="ctranslate2", device="cpu", cpu_threads=1)
    assert isinstance(engine, CTranslate2Engine) and engine.translator.num_translators == 1
    with pytest.raises(ModelLoadError, match="cpu_threads must be 0"):
        load_engine(str(tiny_dirs["marian"]), device="cpu", cpu_threads=-1)
