#!/usr/bin/env bash
# On the GPU device machine (see docs/benchmarks.md): install duiyi over the image's torch and
# transformers from the carried wheels, check CUDA end to end, run the benchmark, write to $OUT.
# Sized to finish in under 8 minutes on an H100/H200 (the benchmark is cut at 6).
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
timeout 360 $PY -m bench --device cuda --naive-limit 128 > "$OUT/bench-cuda.txt" 2> "$OUT/bench-cuda.err"
echo "bench exit $?"
tail -1 "$OUT/bench-cuda.txt" > "$OUT/bench-cuda.json"
tail -20 "$OUT/bench-cuda.txt"
