"""Batch planning on the CPU: which sentences go to the device together.

Pure functions over token counts, so scheduling is tested without a model or a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    # Indices into the caller's list of sentences, shortest first within the batch.
    indices: tuple[int, ...]
    # Longest source in the batch, in tokens (every row is padded to it).
    max_source_tokens: int
    # Decoding steps allowed: the output cap of the longest source.
    max_new_tokens: int
    # Hypotheses decoded per sentence (the beam size): each is a row of its own on the device.
    beams: int = 1

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.beams * (self.max_source_tokens + self.max_new_tokens)


def output_cap(source_tokens: int, *, ratio: float, extra: int, ceiling: int) -> int:
    """Most tokens a translation of a `source_tokens`-long sentence may have.

    en→zh output is usually shorter than the input in tokens; a cap well above that stops
    runaway repetition loops from eating the batch's time.
    """
    return max(1, min(ceiling, int(source_tokens * ratio) + extra))


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_tokens: int,
    max_batch_size: int,
    ratio: float,
    extra: int,
    ceiling: int,
    beams: int = 1,
) -> list[BatchPlan]:
    """Sort by length and cut into batches whose padded size (source + allowed output, times rows,
    times `beams` hypotheses per sentence) stays within `max_batch_tokens`. A single sentence over
    the budget still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    plans: list[BatchPlan] = []
    current: list[int] = []
    longest = 0
    for i in order:
        candidate = max(longest, lengths[i])
        cap = output_cap(candidate, ratio=ratio, extra=extra, ceiling=ceiling)
        rows = len(current) + 1
        if current and (rows > max_batch_size or rows * beams * (candidate + cap) > max_batch_tokens):
            plans.append(_plan(current, longest, ratio, extra, ceiling, beams))
            current, candidate = [], lengths[i]
        current.append(i)
        longest = candidate
    if current:
        plans.append(_plan(current, longest, ratio, extra, ceiling, beams))
    return plans


def _plan(indices: list[int], longest: int, ratio: float, extra: int, ceiling: int, beams: int) -> BatchPlan:
    cap = output_cap(longest, ratio=ratio, extra=extra, ceiling=ceiling)
    return BatchPlan(tuple(indices), longest, cap, beams)
