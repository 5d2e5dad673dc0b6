"""Iteration-level (continuous) batching for greedy decoding: sentences join and leave one running
batch at every decoding step.

The batch path (`TransformersEngine.translate_batch`) decodes a batch from its first step to its
last. A sentence that arrives one step after a batch started waits for all of it, and a batch
formed online from sentences of mixed lengths runs as many steps as its longest. Here the engine
worker keeps one running batch instead: each row has its own position, its own slot in the KV
cache and its own output cap; new sentences are encoded and join between two steps, and a
finished sentence leaves at once, its slot refilled by the next (as in Orca and vLLM, without the
paging: slots are rows of dense tensors, compacted when rows leave).

transformers' cache classes keep one length for a whole batch, so the decoder step is written
out here, over the loaded model's own modules (embeddings, attention projections, layer norms,
feed-forward, LM head); the encoder is the model's own. Two decoder layouts: Marian (opus-mt, the
default model; layer norm after each block) and M2M100 (NLLB and M2M100; layer norm before each
block and once at the end, sinusoidal positions offset past the padding id, the target language
token forced as the first output and not counted). `stepper_for` returns None for other models,
which keep the batch path. The output is the same as the batch path's (tests compare them token by
token, for both layouts).

Memory: the caches hold rows × (longest source + longest allowed output) positions, which the
scheduler keeps within the token budget (`max_batch_tokens`) when it admits rows; they are
released when the batch empties.

Static shapes and CUDA graphs (`static_shapes`, `cuda_graphs`): by default a step runs over exactly
the live rows, the longest source and the furthest position, so every step has new shapes and
launches every kernel from Python — on a GPU, a step of a few thousand rows is then bound by kernel
launches and Python, not by arithmetic. With static shapes a step runs over buckets instead (rows
rounded up to two sizes per octave, source and positions to powers of two; the caches are sized in
the same buckets), so a handful of shapes repeat; the rows between the live ones and the bucket's
end are computed and ignored. The caches may then hold up to 1.5× the rows and twice the positions
the token budget counts: still bounded by the budget, not by the queue. With CUDA graphs, each
bucket's step is captured once as a graph (sharing one memory pool) and replayed: one launch per
step. The caches then stay allocated when the batch empties, as long as they are within
`resting_tokens` (rows × (source + positions)), so an idle service's next sentence reuses the
graphs; larger ones are released as before. The step that is captured is the same code that runs
eagerly on the CPU, where the tests check that static shapes give the same tokens as exact ones;
capture and replay themselves need a GPU (bench/device-run.sh).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.engine import Translation

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

    from models.engine import TransformersEngine


@dataclass(eq=False)
class Row:
    """One sentence in the running batch. `owner` is the caller's handle (the scheduler's admission)."""

    owner: Any
    source_tokens: int
    cap: int


def _round_up(n: int, step: int) -> int:
    return max(step, math.ceil(n / step) * step)


def _pow2(n: int, floor: int) -> int:
    """The smallest power of two ≥ n, at least `floor`."""
    return max(floor, 1 << max(0, n - 1).bit_length())


def row_bucket(n: int) -> int:
    """Rows of a static-shape step: at least 8, then two sizes per octave (24, 32, 48, 64, 96, 128,
    …), so at most a third of a step's rows are padding."""
    if n <= 8:
        return 8
    step = max(8, 1 << (max(0, n - 1).bit_length() - 2))
    return math.ceil(n / step) * step


class Stepper:
    """The running batch of one Marian or M2M100 (NLLB) model. Used by one thread (the engine
    worker)."""

    def __init__(
        self,
        engine: TransformersEngine,
        *,
        static_shapes: bool = False,
        cuda_graphs: bool = False,
        resting_tokens: int = 0,
    ) -> None:
        """`cuda_graphs` (on a CUDA device; implies static shapes): capture each bucket's step once
        and replay it. `static_shapes`: steps over buckets, without graphs (what CUDA graphs
        capture; on the CPU, for tests). `resting_tokens`: with static shapes, caches of at most
        this many rows × (source + positions) stay allocated when the batch empties."""
        import torch

        model = engine.model
        decoder = model.get_decoder()
        self.engine = engine
        self.encoder = model.get_encoder()
        self.layers = list(decoder.layers)
        self.embed = decoder.embed_tokens
        config = model.config
        # M2M100: layer norm before each block and once after the last layer (Marian: after each).
        self.pre_norm = config.model_type == "m2m_100"
        self.final_norm = decoder.layer_norm if self.pre_norm else None
        self.dtype = self.embed.weight.dtype
        self.lm_head = model.lm_head
        self.heads = int(config.decoder_attention_heads)
        self.d_model = int(config.d_model)
        self.head_dim = self.d_model // self.heads
        self.device = torch.device(engine.device)
        self.max_cap = engine.max_output_tokens
        with torch.inference_mode():
            if self.pre_norm:
                # The embedding module scales by itself; position p is row padding_idx + 1 + p of
                # the sinusoidal table (created in float32, whatever the model's dtype).
                self.embed_scale = 1.0
                offset = int(decoder.embed_positions.padding_idx) + 1
                self.positions = decoder.embed_positions.weights[offset:].to(self.dtype)
            else:
                self.embed_scale = float(decoder.embed_scale)
                self.positions = decoder.embed_positions.weight
            # Each layer's query, key and value projections as one (a step is bound by how many
            # operations it launches more than by their size): [3 × d_model, d_model] weights.
            self.qkv = [
                (
                    torch.cat([p.weight for p in (a.q_proj, a.k_proj, a.v_proj)]),
                    torch.cat([p.bias for p in (a.q_proj, a.k_proj, a.v_proj)]),
                )
                for a in (layer.self_attn for layer in self.layers)
            ]
            # The output bias (Marian's final_logits_bias; none for M2M100) with the tokens never
            # generated (pad) at -inf: one addition a step instead of an indexed write of a Python
            # number, so nothing in a captured step reads from the host.
            bias = getattr(model, "final_logits_bias", None)
            vocab = int(self.lm_head.weight.shape[0])
            self.logits_bias = (
                bias.clone() if bias is not None else torch.zeros(1, vocab, dtype=self.dtype, device=self.device)
            )
            self.logits_bias[..., list(engine._suppress)] = float("-inf")
        self.eos = int(engine._eos)
        self.start = int(engine._start)
        # NLLB/M2M100: the target language token is the first output, forced; a row's cap and its
        # translation count only what follows it (as the batch path, which feeds it as a prompt).
        self.forced = engine._forced_bos
        self.prefix = 0 if self.forced is None else 1
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.static_shapes = static_shapes or self.cuda_graphs
        self.resting_tokens = resting_tokens
        self.rows: list[Row] = []
        self.captures = 0  # graphs captured so far (each bucket once per cache allocation)
        self._free()

    def _free(self) -> None:
        """Drop the cache tensors (the batch is empty) and the graphs that use them."""
        self._graphs: dict[tuple[int, int, int], Any] = {}  # bucket → torch.cuda.CUDAGraph
        self._pool: Any = None  # the graphs' shared memory pool
        self._kv: torch.Tensor | None = None  # [layers, 2, rows, heads, positions, head_dim]
        self._cross: torch.Tensor | None = None  # [layers, 2, rows, heads, source positions, head_dim]
        self._src_mask: torch.Tensor | None = None  # [rows, source positions] bool
        self._pos: torch.Tensor | None = None  # [rows] next decoder position = tokens generated
        self._last: torch.Tensor | None = None  # [rows] the token fed at the next step
        self._cap: torch.Tensor | None = None  # [rows] output cap
        self._out: torch.Tensor | None = None  # [rows, positions] tokens generated
        self._chosen: torch.Tensor | None = None  # [rows] the token each row chose at the last step
        # The same positions on the host (one number per row, all moving together), and each
        # row's padded source length: what the next step's attention spans, without a device sync.
        self._host_pos = np.zeros(0, dtype=np.int64)
        self._source_len = np.zeros(0, dtype=np.int64)

    @property
    def capacity(self) -> tuple[int, int, int]:
        """(rows, source positions, decoder positions) the caches hold now."""
        if self._kv is None or self._cross is None:
            return (0, 0, 0)
        return (int(self._kv.shape[2]), int(self._cross.shape[4]), int(self._kv.shape[4]))

    def _reserve(self, rows: int, source: int, positions: int) -> None:
        """Room for `rows` rows of up to `source` source and `positions` decoder positions, keeping
        the live rows. When anything must grow, the caches are sized to what is asked (rounded up),
        not to the largest ever held: the scheduler keeps rows × (source + output) within the
        token budget, so memory follows the budget, not the batch's history or the queue."""
        import torch

        have_rows, have_source, have_positions = self.capacity
        if rows <= have_rows and source <= have_source and positions <= have_positions:
            return
        if self.static_shapes:  # the buckets' sizes, so that every bucket of the live rows fits
            rows, source, positions = row_bucket(rows), _pow2(source, 16), _pow2(positions, 16)
        else:
            rows, source, positions = _round_up(rows, 8), _round_up(source, 16), _round_up(positions, 16)
        # Live rows use no more than the new sizes; what lies beyond them is unused.
        keep_source, keep_positions = min(source, have_source), min(positions, have_positions)
        n = len(self.rows)
        shape = (len(self.layers), 2, rows, self.heads)
        # Zeros, not empty: masked positions still meet the softmax's zero weights, and 0 × NaN is NaN.
        kv = torch.zeros(*shape, positions, self.head_dim, dtype=self.dtype, device=self.device)
        cross = torch.zeros(*shape, source, self.head_dim, dtype=self.dtype, device=self.device)
        src_mask = torch.zeros(rows, source, dtype=torch.bool, device=self.device)
        pos = torch.zeros(rows, dtype=torch.long, device=self.device)
        last = torch.zeros(rows, dtype=torch.long, device=self.device)
        cap = torch.zeros(rows, dtype=torch.long, device=self.device)
        out = torch.zeros(rows, positions, dtype=torch.long, device=self.device)
        chosen = torch.zeros(rows, dtype=torch.long, device=self.device)
        # Every row may attend its first source position: a step over static shapes also computes
        # the rows past the live ones, and a row that may attend nothing would fill its cache with NaN.
        src_mask[:, 0] = True
        if n and self._kv is not None and self._cross is not None:
            assert self._src_mask is not None and self._pos is not None and self._out is not None
            assert self._last is not None and self._cap is not None
            kv[:, :, :n, :, :keep_positions] = self._kv[:, :, :n, :, :keep_positions]
            cross[:, :, :n, :, :keep_source] = self._cross[:, :, :n, :, :keep_source]
            src_mask[:n, :keep_source] = self._src_mask[:n, :keep_source]
            out[:n, :keep_positions] = self._out[:n, :keep_positions]
            pos[:n], last[:n], cap[:n] = self._pos[:n], self._last[:n], self._cap[:n]
        self._kv, self._cross, self._src_mask = kv, cross, src_mask
        self._pos, self._last, self._cap, self._out, self._chosen = pos, last, cap, out, chosen
        self._graphs, self._pool = {}, None  # captured over the old tensors

    def admit(self, items: Sequence[tuple[Any, str, int]]) -> None:
        """Encode `(owner, source, cap)` items and add them to the running batch."""
        import torch

        if not items:
            return
        engine = self.engine
        enc = engine.encode([source for _, source, _ in items])
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        lengths = mask.sum(dim=1).tolist()
        caps = [max(1, min(cap, self.max_cap)) for _, _, cap in items]
        n, k, width = len(self.rows), len(items), int(ids.shape[1])
        longest_output = max([r.cap for r in self.rows] + caps)
        # A row feeds at most cap + 1 + prefix tokens: the start token, the forced language token
        # (NLLB, M2M100), cap outputs, and the step giving EOS.
        positions = longest_output + 1 + self.prefix
        self._reserve(n + k, max(width, int(self._source_len.max(initial=0))), positions)
        assert self._cross is not None and self._src_mask is not None and self._pos is not None
        assert self._last is not None and self._cap is not None
        with torch.inference_mode():
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            for i, layer in enumerate(self.layers):
                attn = layer.encoder_attn
                for j, proj in enumerate((attn.k_proj, attn.v_proj)):
                    states = proj(hidden).view(k, width, self.heads, self.head_dim).transpose(1, 2)
                    self._cross[i, j, n : n + k, :, :width] = states
            self._src_mask[n : n + k] = False
            self._src_mask[n : n + k, :width] = mask.bool()
            self._pos[n : n + k] = 0
            self._last[n : n + k] = self.start
            self._cap[n : n + k] = torch.tensor(caps, device=self.device) + self.prefix
        for (owner, _, _), tokens, cap in zip(items, lengths, caps, strict=True):
            self.rows.append(Row(owner, int(tokens), cap))
        self._host_pos = np.concatenate([self._host_pos, np.zeros(k, dtype=np.int64)])
        self._source_len = np.concatenate([self._source_len, np.full(k, width, dtype=np.int64)])

    def step(self) -> list[tuple[Row, Translation]]:
        """One decoding step of every row; the rows that finished, with their translations."""
        import torch

        n = len(self.rows)
        if not n:
            return []
        assert self._chosen is not None and self._pos is not None and self._last is not None
        assert self._out is not None
        # What the next step's attention spans, from the host's copies (no device sync).
        positions = int(self._host_pos.max()) + 1
        source = int(self._source_len.max())
        if not self.static_shapes:
            self._forward(n, source, positions)
        elif self.cuda_graphs:
            self._replay((row_bucket(n), _pow2(source, 16), _pow2(positions, 16)))
        else:
            self._forward(row_bucket(n), _pow2(source, 16), _pow2(positions, 16))
        with torch.inference_mode():
            chosen, pos = self._chosen[:n], self._pos[:n]
            self._out[torch.arange(n, device=self.device), pos] = chosen
            self._last[:n] = chosen
            self._pos[:n] += 1
            # The one device-to-host copy of a step: which rows gave EOS (few, most steps none).
            done = (chosen == self.eos).nonzero().flatten().tolist()
        generated = self._host_pos[done].tolist()  # tokens before this step's EOS, forced one included
        self._host_pos += 1
        if not done:
            return []
        finished = [self.rows[i] for i in done]
        rows_out = self._out[torch.tensor(done, device=self.device)].tolist()
        sequences = [tokens[self.prefix : length] for tokens, length in zip(rows_out, generated, strict=True)]
        texts = self.engine.decode(sequences)
        self.remove(done)
        return [
            (row, Translation(text=text.strip(), source_tokens=row.source_tokens, output_tokens=len(tokens)))
            for row, text, tokens in zip(finished, texts, sequences, strict=True)
        ]

    def _forward(self, rows: int, source: int, positions: int) -> None:
        """The decoder's step for the first `rows` slots, attending `source` source and `positions`
        decoder positions: writes each row's key and value at its position and its chosen token to
        `_chosen`. Reads and writes only tensors the stepper holds, and does not advance them (so
        running it twice, as a graph's warm-up and capture do, is harmless). The slots past the live
        rows hold finished or empty rows: computed, never read."""
        import torch
        import torch.nn.functional as F

        assert self._kv is not None and self._cross is not None and self._src_mask is not None
        assert self._pos is not None and self._last is not None and self._cap is not None
        assert self._chosen is not None
        n, heads, dim, d_model = rows, self.heads, self.head_dim, self.d_model
        with torch.inference_mode():
            pos = self._pos[:n]
            x = (self.embed(self._last[:n]) * self.embed_scale + self.positions[pos])[:, None, :]
            steps = torch.arange(positions, device=self.device)
            self_mask = (steps[None, :] <= pos[:, None])[:, None, None, :]
            cross_mask = self._src_mask[:n, None, None, :source]
            slots = torch.arange(n, device=self.device)
            pre = self.pre_norm  # M2M100: norm, block, residual; Marian: block, residual, norm
            for i, layer in enumerate(self.layers):
                attn = layer.self_attn
                h = layer.self_attn_layer_norm(x) if pre else x
                qkv = F.linear(h, *self.qkv[i]).view(n, 3, heads, dim)
                cache = self._kv[i]  # [2, rows, heads, positions, head_dim]
                cache[:, slots, :, pos] = qkv[:, 1:]  # each row's key and value at its position
                out = F.scaled_dot_product_attention(
                    qkv[:, 0, :, None, :],
                    cache[0, :n, :, :positions],
                    cache[1, :n, :, :positions],
                    attn_mask=self_mask,
                    scale=attn.scaling,
                )
                x = x + attn.out_proj(out.transpose(1, 2).reshape(n, 1, d_model))
                x = x if pre else layer.self_attn_layer_norm(x)
                attn = layer.encoder_attn
                h = layer.encoder_attn_layer_norm(x) if pre else x
                query = attn.q_proj(h).view(n, 1, heads, dim).transpose(1, 2)
                out = F.scaled_dot_product_attention(
                    query,
                    self._cross[i, 0, :n, :, :source],
                    self._cross[i, 1, :n, :, :source],
                    attn_mask=cross_mask,
                    scale=attn.scaling,
                )
                x = x + attn.out_proj(out.transpose(1, 2).reshape(n, 1, d_model))
                x = x if pre else layer.encoder_attn_layer_norm(x)
                h = layer.final_layer_norm(x) if pre else x
                x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
                x = x if pre else layer.final_layer_norm(x)
            if self.final_norm is not None:
                x = self.final_norm(x)
            logits = self.lm_head(x[:, 0]) + self.logits_bias
            chosen = logits.argmax(dim=-1)
            # A row at its cap gives EOS (`_cap` counts the forced token too); a row's first output
            # is the forced language token, if the model has one.
            chosen = torch.where(self._cap[:n] <= pos, torch.full_like(chosen, self.eos), chosen)
            if self.forced is not None:
                chosen = torch.where(pos == 0, torch.full_like(chosen, self.forced), chosen)
            self._chosen[:n] = chosen

    def _replay(self, bucket: tuple[int, int, int]) -> None:
        """The bucket's step as a CUDA graph: captured on first use, then replayed. If capture
        fails, the stepper logs it once and carries on with static shapes, without graphs."""
        import torch

        # On the model's device (cuda:N), which need not be the thread's current one.
        with torch.cuda.device(self.device):
            graph = self._graphs.get(bucket)
            if graph is None:
                try:
                    graph = self._capture(bucket)
                except RuntimeError:
                    log.exception("capturing a CUDA graph of the running batch's step failed; going on without it")
                    self.cuda_graphs = False
                    self._graphs = {}
                    self._forward(*bucket)
                    return
                self._graphs[bucket] = graph
                self.captures += 1
                log.debug("captured the running batch's step for %d rows, %d source, %d positions", *bucket)
            graph.replay()

    def _capture(self, bucket: tuple[int, int, int]) -> Any:
        """A CUDA graph of the bucket's step, in the graphs' shared memory pool."""
        import torch

        # Warm-up outside the capture, on a side stream as CUDA graphs require: lazy initialisation
        # (cuBLAS handles, kernel selection) must not happen while capturing.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._forward(*bucket)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread's CUDA calls are checked for being capture-safe (request
        # threads only tokenize, but nothing they do may break a capture).
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            self._forward(*bucket)
        return graph

    def remove(self, indices: Sequence[int]) -> None:
        """Take rows out of the batch: the last rows move into the freed slots, so the live rows
        stay the first `len(rows)` slots of every cache."""
        import torch

        gone = set(indices)
        n = len(self.rows)
        keep = n - len(gone)
        holes = sorted(i for i in gone if i < keep)
        movers = [i for i in range(keep, n) if i not in gone]
        if holes:
            assert self._kv is not None and self._cross is not None and self._src_mask is not None
            assert self._pos is not None and self._last is not None and self._cap is not None
            assert self._out is not None
            dst = torch.tensor(holes, device=self.device)
            src = torch.tensor(movers, device=self.device)
            with torch.inference_mode():
                self._kv[:, :, dst] = self._kv[:, :, src]
                self._cross[:, :, dst] = self._cross[:, :, src]
                for tensor in (self._src_mask, self._pos, self._last, self._cap, self._out):
                    tensor[dst] = tensor[src]
            for hole, mover in zip(holes, movers, strict=True):
                self.rows[hole] = self.rows[mover]
            self._host_pos[holes] = self._host_pos[movers]
            self._source_len[holes] = self._source_len[movers]
        if self.static_shapes and self._pos is not None:
            # Static steps compute the freed slots too: a row that ended at its cap left its slot one
            # past its last position, possibly the caches' end. Position 0 is always inside them.
            with torch.inference_mode():
                self._pos[keep:n] = 0
        del self.rows[keep:]
        self._host_pos = self._host_pos[:keep].copy()
        self._source_len = self._source_len[:keep].copy()
        if not self.rows:
            rows, source, positions = self.capacity
            if not self.static_shapes or rows * (source + positions) > self.resting_tokens:
                self._free()

    def clear(self) -> list[Row]:
        """Empty the batch (after an error); the rows that were in it."""
        rows, self.rows = self.rows, []
        self._free()
        return rows


def stepper_for(engine: Any, *, cuda_graphs: bool = False, resting_tokens: int = 0) -> Stepper | None:
    """A running batch for this engine, or None when it decodes whole batches only. `cuda_graphs`:
    on a CUDA device, steps over static shapes replayed as CUDA graphs (Stepper)."""
    from models.engine import TransformersEngine

    if not isinstance(engine, TransformersEngine):
        return None
    if getattr(engine.model.config, "model_type", "") not in ("marian", "m2m_100"):
        return None
    return Stepper(engine, cuda_graphs=cuda_graphs, resting_tokens=resting_tokens)
