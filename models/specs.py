"""Model specs: how to drive one family of translation models for English → Simplified Chinese.

A spec is plain data. The engine reads it to know what to put in front of the source (Marian's
target-language token), which tokenizer languages to set (NLLB/M2M100) and which token the
decoder must start with. Families are recognised from the model's config, or named explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Family(StrEnum):
    MARIAN = "marian"
    NLLB = "nllb"
    M2M100 = "m2m100"


@dataclass(frozen=True)
class ModelSpec:
    family: Family
    # Text put in front of every source sentence (Marian multi-target models need `>>cmn_Hans<< `).
    source_prefix: str = ""
    # Tokenizer `src_lang` (NLLB/M2M100 language codes); None when the family has no such notion.
    src_lang: str | None = None
    # Token the decoder is forced to emit first (the target language code for NLLB/M2M100).
    forced_bos_token: str | None = None


SPECS: dict[Family, ModelSpec] = {
    # Helsinki-NLP/opus-mt-en-zh is multi-target: without the token it may answer in any Chinese.
    Family.MARIAN: ModelSpec(Family.MARIAN, source_prefix=">>cmn_Hans<< "),
    Family.NLLB: ModelSpec(Family.NLLB, src_lang="eng_Latn", forced_bos_token="zho_Hans"),
    Family.M2M100: ModelSpec(Family.M2M100, src_lang="en", forced_bos_token="__zh__"),
}

DEFAULT_MODEL = "Helsinki-NLP/opus-mt-en-zh"


class UnknownFamilyError(ValueError):
    """The family could not be recognised, or a name given is not one we know."""


def spec_for(family: str | Family) -> ModelSpec:
    """The spec of a family named by the user (`marian`, `nllb`, `m2m100`)."""
    try:
        return SPECS[Family(family)]
    except ValueError:
        valid = ", ".join(f.value for f in Family)
        raise UnknownFamilyError(f"unknown model family {family!r}; valid: {valid}") from None


def detect_family(config: Any, tokenizer_class: str = "") -> Family:
    """Recognise the family from a transformers config (and the tokenizer class for m2m_100).

    NLLB checkpoints use the M2M100 architecture (`model_type == "m2m_100"`) with an NLLB
    tokenizer, so the tokenizer's class name tells the two apart.
    """
    model_type = getattr(config, "model_type", "")
    if model_type == "marian":
        return Family.MARIAN
    if model_type == "m2m_100":
        return Family.NLLB if "nllb" in tokenizer_class.lower() else Family.M2M100
    valid = ", ".join(f.value for f in Family)
    raise UnknownFamilyError(
        f"cannot recognise the model family from model_type {model_type!r}; name it with --family ({valid})"
    )


def config_families(config: Any, tokenizer_class: str = "") -> frozenset[Family] | None:
    """The families a model's config (and tokenizer class) allow: one for a Marian model or an
    m2m_100 one whose tokenizer says NLLB or M2M100, both m2m_100 families where the tokenizer does
    not tell them apart, None for an architecture duiyi does not know (any family may be named)."""
    model_type = getattr(config, "model_type", "")
    if model_type == "marian":
        return frozenset({Family.MARIAN})
    if model_type == "m2m_100":
        name = tokenizer_class.lower()
        if "nllb" in name:
            return frozenset({Family.NLLB})
        if "m2m100" in name:
            return frozenset({Family.M2M100})
        return frozenset({Family.NLLB, Family.M2M100})
    return None
