"""A model that cannot be used as given is one line and exit status 2 (README, Command line), naming
what is wrong and what to do: a damaged weights or JSON file, a missing tokenizer file, a family its
config contradicts, a CUDA device where there is none, CTranslate2 not installed. A `~` path is a
path, and converting a model for CTranslate2 writes no progress bar to a JSON log."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from transformers import AutoConfig, PreTrainedTokenizerFast

from models.engine import ModelLoadError, load_engine, model_spec
from models.specs import Family
from tests.test_small_fixes import one_line_error, run

ENGINES = ("transformers", "ctranslate2")


def copy_model(source: Path, target: Path) -> Path:
    """A copy of a tiny model, without the CTranslate2 conversion cached beside the original."""
    return Path(shutil.copytree(source, target, ignore=shutil.ignore_patterns("ctranslate2")))


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("The alliance is strong.", encoding="utf-8")
    return path


@pytest.mark.parametrize(("engine", "size"), [("transformers", 100_000), ("transformers", 0), ("ctranslate2", 100_000)])
def test_a_damaged_weights_file_is_named(
    tiny_dirs: dict[str, Path], tmp_path: Path, article: Path, engine: str, size: int
) -> None:
    """safetensors' SafetensorError ("incomplete metadata", "header too small") was a traceback
    (exit status 1); with CTranslate2 it was blamed on the conversion and its cache."""
    model = copy_model(tiny_dirs["marian"], tmp_path / "m")
    weights = model / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(size)
    done = run("translate", str(article), "--model", str(model), "--engine", engine, "--device", "cpu")
    one_line_error(done, f"cannot load translation model '{model}'", f"its weights file {weights} is damaged",
                   "download the model again")  # fmt: skip
    assert "convert" not in done.stderr


@pytest.mark.parametrize(
    ("engine", "family", "missing", "named"),
    [
        ("transformers", "marian", "source.spm", "needs source.spm,"),
        ("transformers", "marian", "vocab.json", "needs vocab.json,"),
        # NLLB's tokenizer raised nothing: it was built of its special tokens alone, every word <unk>.
        ("transformers", "nllb", "tokenizer.json", "needs tokenizer.json or sentencepiece.bpe.model,"),
        ("ctranslate2", "marian", "vocab.json", "needs vocab.json,"),
        ("ctranslate2", "nllb", "tokenizer.json", "needs tokenizer.json or sentencepiece.bpe.model,"),
    ],
)
def test_a_missing_tokenizer_file_is_named(
    tiny_dirs: dict[str, Path], tmp_path: Path, article: Path, engine: str, family: str, missing: str, named: str
) -> None:
    model = copy_model(tiny_dirs[family], tmp_path / "m")
    (model / missing).unlink()
    done = run("translate", str(article), "--model", str(model), "--engine", engine, "--device", "cpu")
    one_line_error(done, f"cannot load translation model '{model}'", named, f"the directory {model} does not hold",
                   "copy the model directory again, whole")  # fmt: skip


def test_serve_names_a_missing_tokenizer_file(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = copy_model(tiny_dirs["marian"], tmp_path / "m")
    (model / "target.spm").unlink()
    # Port 0: serve binds its address before the model loads. Its database: not the user's own.
    done = run("serve", "--model", str(model), "--port", "0", env={"DUIYI_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr  # serve logs its database's migration first, then the one line
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"duiyi: cannot load translation model '{model}'") and "needs target.spm," in last


def test_a_damaged_json_file_is_named(tiny_dirs: dict[str, Path], tmp_path: Path, article: Path) -> None:
    """The cause was one line already, but JSON's own ("Unterminated string …") named no file."""
    model = copy_model(tiny_dirs["marian"], tmp_path / "m")
    vocab = model / "vocab.json"
    vocab.write_bytes(vocab.read_bytes()[:100])
    done = run("translate", str(article), "--model", str(model), "--device", "cpu")
    one_line_error(done, f"{vocab} is damaged: it is not valid JSON", "copy the model directory again, whole")


def test_a_model_path_with_a_tilde_is_a_path(tiny_dirs: dict[str, Path], tmp_path: Path, article: Path) -> None:
    """`--model '~/tinym'` (quoted, or from DUIYI_MODEL: no shell expands it) was taken for a hub id
    by the transformers engine and refused as one ("Repo id must use alphanumeric chars"), while
    the error's own words looked for the directory. CTranslate2 already expanded it."""
    home = tmp_path / "home"
    copy_model(tiny_dirs["marian"], home / "tinym")
    for engine in ENGINES:
        done = run("translate", str(article), "--output", "json", "--engine", engine, "--device", "cpu",
                   env={"HOME": str(home), "DUIYI_MODEL": "~/tinym"})  # fmt: skip
        assert done.returncode == 0, (engine, done.stderr[-2000:])
        assert json.loads(done.stdout)["model"] == "~/tinym"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_family_the_config_contradicts_is_refused(tiny_dirs: dict[str, Path], article: Path, engine: str) -> None:
    """A Marian model driven as NLLB (its src_lang, its forced zho_Hans token) translates wrongly,
    silently: refused, naming both families and the setting."""
    model = str(tiny_dirs["marian"])
    done = run("translate", str(article), "--model", model, "--family", "nllb", "--engine", engine, "--device", "cpu")
    one_line_error(done, "setting family (DUIYI_FAMILY / --family)", f"'{model}' is of family marian", "not nllb")


def test_a_family_is_refused_only_where_the_config_tells(tiny_dirs: dict[str, Path]) -> None:
    """NLLB and M2M100 share the m2m_100 architecture: where the tokenizer's class tells them apart
    the other is refused, where it does not (a generic fast tokenizer) either may be named, and a
    Marian family is refused all the same."""
    config = AutoConfig.from_pretrained(tiny_dirs["nllb"])
    generic = PreTrainedTokenizerFast(tokenizer_file=str(tiny_dirs["nllb"] / "tokenizer.json"))
    assert model_spec("m", "m2m100", config, generic).family is Family.M2M100
    assert model_spec("m", "nllb", config, generic).family is Family.NLLB
    with pytest.raises(ModelLoadError, match=r"is of family m2m100 or nllb .*not marian"):
        model_spec("m", "marian", config, generic)
    nllb = load_engine(str(tiny_dirs["nllb"]), device="cpu")
    with pytest.raises(ModelLoadError, match=r"is of family nllb .*not m2m100"):
        model_spec("m", "m2m100", config, nllb.tokenizer)  # type: ignore[attr-defined]


def test_ctranslate2_not_installed_says_to_install_it(
    tiny_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "point duiyi at a local copy of the model", which no copy of the model would mend."""
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # `import ctranslate2` raises ImportError
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tiny_dirs["marian"]), engine="ctranslate2", device="cpu")
    message = str(info.value)
    assert "the ctranslate2 package cannot be imported" in message
    assert "pip install 'ctranslate2>=4.5'" in message and "--engine transformers" in message
    assert "local copy" not in message and len(message.splitlines()) == 1


def test_converting_for_ctranslate2_writes_no_progress_bar(
    tiny_dirs: dict[str, Path], tmp_path: Path, article: Path
) -> None:
    """The first conversion wrote transformers' "Loading weights: 100%|…" bar to stderr, which a
    JSON log collector cannot read, whatever DUIYI_LOG_FORMAT and --no-progress said."""
    model = copy_model(tiny_dirs["marian"], tmp_path / "m")
    done = run("translate", str(article), "--model", str(model), "--engine", "ctranslate2", "--device", "cpu",
               "--no-progress", env={"DUIYI_LOG_FORMAT": "json"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((model / "ctranslate2").glob("*/model.bin")), "the model was converted"
    assert "Loading weights" not in done.stderr and "it/s" not in done.stderr
    for line in done.stderr.splitlines():
        assert isinstance(json.loads(line), dict), line


def test_cuda_where_there_is_none_names_the_setting(tiny_dirs: dict[str, Path], article: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run("translate", str(article), "--model", str(tiny_dirs["marian"]), "--device", "cuda")
    one_line_error(done, "duiyi: setting device (DUIYI_DEVICE / --device): 'cuda' was asked for but CUDA is not")
