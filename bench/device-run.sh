#!/usr/bin/env bash
# On the GPU device machine (see docs/benchmarks.md): install duiyi over the image's torch and
# transformers from the carried wheels, check CUDA end to end, run the benchmark, write to $OUT.
# Sized to finish in under 8 minutes on an H100/H200 (the benchmark is cut at 5).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-run.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m venv --system-site-packages /tmp/duiyi-venv
PY=/tmp/duiyi-venv/bin/python
$PY -m pip install -q --no-index --no-deps .wheels/*.whl
$PY -m pip install -q --no-index --no-deps --no-build-isolation -e .
$PY - <<'PYEOF'
import time, torch
from pathlib import Path
from models.tiny import build_marian
from models.engine import load_engine
from models.continuous import stepper_for
from models.batching import output_cap
from bench.sentences import news_sentences
d = build_marian(Path("/tmp/tiny-marian"))
for kind in ("transformers", "ctranslate2"):
    e = load_engine(str(d), engine=kind, device="cuda")
    t = time.perf_counter(); r = e.translate_batch(["Hello there.", "A second, longer sentence."])
    print(kind, e.device, [x.output_tokens for x in r], f"{(time.perf_counter() - t) * 1000:.1f} ms")
print("torch", torch.__version__, torch.cuda.get_device_name(0))
# The running batch against the batch path on CUDA (bf16): how many sentences agree token for token.
e = load_engine(str(d), engine="transformers", device="cuda")
sents = news_sentences(64)
ref = e.translate_batch(sents)
st = stepper_for(e)
st.admit([(i, s, output_cap(e.count_tokens(s), ratio=2.0, extra=10, ceiling=510)) for i, s in enumerate(sents)])
got = {}
while st.rows:
    got.update({row.owner: tr for row, tr in st.step()})
print("running batch vs batch path on cuda:", sum(got[i] == ref[i] for i in range(64)), "of 64 identical")
PYEOF
# One decoding step of the running batch at 2,048 rows on the opus-mt-sized model, profiled: where a
# step's time goes (kernel launches, Python, the 65k-wide projection, attention).
timeout 120 $PY - <<'PYEOF' > "$OUT/step-profile.txt" 2>&1
import time, torch
from pathlib import Path
from models.tiny import build_marian, OPUS_MT_DIMS, OPUS_MT_VOCAB
from models.engine import load_engine
from models.continuous import stepper_for
from bench.sentences import news_sentences
d = build_marian(Path("/tmp/opus-sized"), dims=OPUS_MT_DIMS, vocab_size=OPUS_MT_VOCAB, never_eos=True)
e = load_engine(str(d), engine="transformers", device="cuda")
st = stepper_for(e)
sents = news_sentences(2048)
st.admit([(i, s, 200) for i, s in enumerate(sents)])
for _ in range(5): st.step()
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): st.step()
torch.cuda.synchronize(); ms = (time.perf_counter() - t) / 20 * 1000
print(f"2048 rows: {ms:.2f} ms per step, {2048 / ms * 1000:,.0f} tokens/s")
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(5): st.step()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
PYEOF
head -3 "$OUT/step-profile.txt"
# CUDA graphs (DUIYI_CUDA_GRAPHS): the running batch's step replayed as graphs against the eager
# step, side by side, per step and row count; then whether both give the same tokens.
timeout 150 $PY - <<'PYEOF' > "$OUT/cuda-graphs.txt" 2>&1
import statistics, time, torch
from pathlib import Path
from models.engine import load_engine
from models.continuous import Stepper
from bench.sentences import news_sentences
e = load_engine("/tmp/opus-sized", engine="transformers", device="cuda")
def ms_per_step(stepper, rows):
    stepper.admit([(i, s, 200) for i, s in enumerate(news_sentences(rows))])
    for _ in range(3): stepper.step()  # a graph is captured at the first step of a bucket
    times = []
    for _ in range(5):
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(4): stepper.step()
        torch.cuda.synchronize(); times.append((time.perf_counter() - t) / 4 * 1000)
    stepper.clear()
    return statistics.median(times)
ms_per_step(Stepper(e), 8)  # warm-up: lazy initialisation, kernel selection
for rows in (1, 64, 512, 2048, 4096):
    eager = ms_per_step(Stepper(e), rows)
    graphs = Stepper(e, cuda_graphs=True)
    replay = ms_per_step(graphs, rows)
    print(f"{rows:>5} rows: eager {eager:7.2f} ms/step ({rows / eager * 1000:>11,.0f} tok/s), "
          f"graphs {replay:7.2f} ms/step ({rows / replay * 1000:>11,.0f} tok/s), x{eager / replay:.2f}, "
          f"graphs on: {graphs.cuda_graphs}, {graphs.captures} captured")
sents = news_sentences(256)
caps = [min(60, e.count_tokens(s) + 5) for s in sents]
def decode(stepper):
    got, pending = {}, list(range(len(sents)))
    while pending or stepper.rows:  # 32 newcomers between steps: rows join and leave mid-decode
        batch, pending = pending[:32], pending[32:]
        stepper.admit([(i, sents[i], caps[i]) for i in batch])
        got.update({row.owner: t.text for row, t in stepper.step()})
    return got
# Against the same static shapes run eagerly (the same kernels: identical expected) and against exact
# shapes (other matmul shapes: bf16 rounding may flip near-ties on random weights).
graphs, static, exact = (decode(Stepper(e, **kw)) for kw in ({"cuda_graphs": True}, {"static_shapes": True}, {}))
for name, other in (("static shapes, eager", static), ("exact shapes, eager", exact)):
    print(f"graphs vs {name}:", sum(graphs[i] == other[i] for i in range(len(sents))), f"of {len(sents)} identical")
PYEOF
cat "$OUT/cuda-graphs.txt"
timeout 300 $PY -m bench --device cuda --naive-limit 128 > "$OUT/bench-cuda.txt" 2> "$OUT/bench-cuda.err"
echo "bench exit $?"
tail -1 "$OUT/bench-cuda.txt" > "$OUT/bench-cuda.json"
tail -20 "$OUT/bench-cuda.txt"
