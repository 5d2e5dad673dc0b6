"""A fixed set of news-length English sentences of varied length, all distinct (the scheduler's
cache would otherwise make repeats free)."""

from __future__ import annotations

_BASE = (
    "The meeting was held in Tokyo.",
    "Officials from both countries declined to comment on the talks.",
    "The alliance has long been the core of the relationship between the two governments.",
    "Defense ministers discussed missile defense, cyber security and the relocation of a military base.",
    "Analysts said the agreement could change the balance of power in the region for years to come.",
    "Japan is preparing to establish a national security council and to publish its first security strategy.",
    "The prime minister told reporters that his government would continue to strengthen its ties with "
    "neighboring countries while defending its territory.",
    "Critics warned that the plan, which would expand the role of the armed forces overseas, had been drafted "
    "without enough public debate and could provoke an arms race.",
    "Trade between the two economies grew by more than ten percent last year.",
    "The foreign minister will travel to Washington next week for talks with his counterpart.",
    "Protesters gathered outside the parliament building on Sunday.",
    "Officials say the new policy will take effect at the start of next year, although the details of how it "
    "will be financed remain unclear.",
    "The summit ended without a joint statement.",
    "Markets rose sharply after the central bank announced that it would keep interest rates unchanged for "
    "the rest of the year.",
    "Both sides agreed to hold another round of talks in the spring.",
    "The report, published on Thursday by a group of independent researchers, found that the number of "
    "military exercises in the area had doubled in the past five years and that most of them took place "
    "without advance notice to neighboring states.",
)
_OPENERS = ("", "On Monday, ", "In Tokyo, ", "According to officials, ", "Earlier this week, ", "Meanwhile, ")


def news_sentences(count: int) -> list[str]:
    """`count` distinct sentences, cycling through lengths from 6 to about 70 words."""
    out: list[str] = []
    round_ = 0
    while len(out) < count:
        for base in _BASE:
            opener = _OPENERS[round_ % len(_OPENERS)]
            text = opener + (base[0].lower() + base[1:] if opener else base)
            if round_ >= len(_OPENERS):
                text = text[:-1] + f", in report number {round_}."
            out.append(text)
            if len(out) == count:
                break
        round_ += 1
    return out


def requests_of(sentences: list[str], size: int) -> list[list[str]]:
    """Sentences grouped as a service would receive them: paragraphs of `size` sentences."""
    return [sentences[i : i + size] for i in range(0, len(sentences), size)]
