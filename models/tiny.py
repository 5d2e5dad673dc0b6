"""Tiny random-weight models of each supported family, for tests and offline trials.

They are built with the real classes (MarianConfig/MarianTokenizer, M2M100Config/NllbTokenizer),
with a SentencePiece vocabulary trained on the fly (including the family's language tokens),
and written with `save_pretrained`, so the engine loads them exactly as it loads a hub model.
Their weights are random: what they output is gibberish, only its shape is meaningful.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from models.specs import Family

# A small bilingual corpus: enough for SentencePiece to learn every ASCII letter, digit and
# common punctuation on the English side, and a few hundred Chinese characters on the other.
_ENGLISH = """\
Japanese Prime Minister Abe Shinzo met U.S. Secretary of State John Kerry in Tokyo on November 2.
The Security Consultative Committee (SCC) held its "2+2" meeting on October 3, 2013.
Defense Secretary Chuck Hagel and Foreign Minister Kishida Fumio discussed Futenma and Okinawa.
Vladimir Putin, Xi Jinping and Barack Obama spoke about the Kurile Islands and the Pentagon.
Mr. Abe's government said the alliance remains the cornerstone of peace and security.
Dr. Smith, a graduate of Johns Hopkins University, writes about China-U.S. relations.
What should we make of Abenomics? It is increasingly clear that policy is changing!
The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1,000 25% $5.5 billion, Jan. Feb. Mar. Apr. Sept. Nov. Dec.
Quotes 'single' and “curly” and ‘apostrophes’ — dashes – and ellipses … (brackets) [x] {y} @ # & * / \\ _ = < > | ~ ^ `
ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz
"""

_CHINESE = """\
日本首相安倍晋三于11月2日在东京会见了美国国务卿约翰·克里。
美日安全保障磋商委员会于2013年10月3日举行了“2+2”会议。
国防部长查克·哈格尔和外务大臣岸田文雄讨论了普天间和冲绳问题。
弗拉基米尔·普京、习近平和奥巴马谈到了千岛群岛和五角大楼。
安倍政府表示，同盟仍然是和平与安全的基石。
史密斯博士毕业于约翰斯·霍普金斯大学，撰写有关中美关系的文章。
我们应该如何看待安倍经济学？越来越清楚的是，政策正在改变！
这是一个关于新闻、政治、经济、军事、外交、历史、文化和社会的简单语料。
数字：0 1 2 3 4 5 6 7 8 9 10 100 1000 百分之二十五 五十五亿美元，一月 二月 十一月。
引号「单」与“双”，‘撇号’——破折号和省略号……（括号）《书名》、；：！？
"""

# NLLB tokenizers carry every FLORES-200 code as a special token; the tiny model needs only ours.
_NLLB_LANGS = ["eng_Latn", "zho_Hans", "zho_Hant", "yue_Hant"]
_MARIAN_TARGETS = [">>cmn_Hans<<", ">>cmn_Hant<<", ">>yue_Hant<<", ">>cmn<<"]

HELP = (
    "Write a tiny random-weight model of FAMILY to OUTDIR, for tests and offline trials. "
    "It loads like the real model but its translations are gibberish."
)


def _train_spm(text: str, prefix: Path, *, vocab_size: int, model_type: str, symbols: list[str]) -> None:
    import sentencepiece as spm

    corpus = prefix.with_suffix(".txt")
    corpus.write_text(text * 3, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        user_defined_symbols=symbols,
        bos_id=-1 if model_type == "unigram" else 0,
        pad_id=-1 if model_type == "unigram" else 1,
        eos_id=0 if model_type == "unigram" else 2,
        unk_id=1 if model_type == "unigram" else 3,
        minloglevel=2,
    )


def _small_dims() -> dict[str, Any]:
    return {
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 256,
    }


# Helsinki-NLP/opus-mt-en-zh's architecture, for benchmarks (77.5M parameters).
OPUS_MT_DIMS: dict[str, Any] = {
    "d_model": 512,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 8,
    "decoder_attention_heads": 8,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
    "max_position_embeddings": 512,
}
OPUS_MT_VOCAB = 65001


def build_marian(
    outdir: Path,
    *,
    seed: int = 0,
    dims: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    never_eos: bool = False,
) -> Path:
    """A random Marian en→zh model. `dims`/`vocab_size` give it another size (the benchmark uses
    opus-mt-en-zh's); `never_eos` biases EOS away so every sentence decodes to its length cap,
    which pins output lengths identically for every engine."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _train_spm(_ENGLISH, work / "source", vocab_size=400, model_type="unigram", symbols=_MARIAN_TARGETS)
        _train_spm(_CHINESE, work / "target", vocab_size=400, model_type="unigram", symbols=[])
        # One shared vocab.json as in opus-mt-en-zh: </s>=0, <unk>=1, pieces of both sides, <pad> last.
        vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
        for side in ("source", "target"):
            proc = spm.SentencePieceProcessor(model_file=str(work / f"{side}.model"))
            for i in range(proc.get_piece_size()):
                piece = proc.id_to_piece(i)
                if piece not in vocab and not proc.is_control(i) and not proc.is_unknown(i):
                    vocab[piece] = len(vocab)
        # Pad to the wanted size with tokens no text encodes to (the model can still emit them).
        while vocab_size is not None and len(vocab) < vocab_size - 1:
            vocab[f"<extra_{len(vocab)}>"] = len(vocab)
        vocab["<pad>"] = len(vocab)
        (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        tokenizer = MarianTokenizer(
            source_spm=str(work / "source.model"),
            target_spm=str(work / "target.model"),
            vocab=str(work / "vocab.json"),
            source_lang="en",
            target_lang="zh",
        )
        torch.manual_seed(seed)
        config = MarianConfig(
            vocab_size=len(vocab),
            decoder_vocab_size=len(vocab),
            pad_token_id=vocab["<pad>"],
            decoder_start_token_id=vocab["<pad>"],
            eos_token_id=0,
            forced_eos_token_id=0,
            share_encoder_decoder_embeddings=True,
            **(dims or _small_dims()),
        )
        model = MarianMTModel(config).eval()
        if never_eos:
            with torch.no_grad():
                model.final_logits_bias[0, 0] = -1e4  # within fp16 range
        outdir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(outdir)
        tokenizer.save_pretrained(outdir)
    return outdir


def build_nllb(outdir: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # NLLB's real vocabulary is one SentencePiece BPE model over all languages.
        _train_spm(_ENGLISH + _CHINESE, work / "sentencepiece.bpe", vocab_size=700, model_type="bpe", symbols=[])
        tokenizer = NllbTokenizer.from_pretrained(
            str(work), extra_special_tokens=_NLLB_LANGS, src_lang="eng_Latn", tgt_lang="zho_Hans"
        )
        torch.manual_seed(seed)
        config = M2M100Config(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            **_small_dims(),
        )
        model = M2M100ForConditionalGeneration(config).eval()
        outdir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(outdir)
        tokenizer.save_pretrained(outdir)
    return outdir


def build_tiny(outdir: Path, family: Family | str = Family.MARIAN, *, seed: int = 0) -> Path:
    """Write a tiny random-weight model of `family` to `outdir` and return the directory."""
    family = Family(family)
    if family is Family.MARIAN:
        return build_marian(Path(outdir), seed=seed)
    if family is Family.NLLB:
        return build_nllb(Path(outdir), seed=seed)
    raise ValueError(f"no tiny builder for family {family.value!r}; valid: marian, nllb")
