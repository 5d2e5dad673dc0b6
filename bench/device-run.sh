#!/usr/bin/env bash
# On the GPU device machine (see docs/benchmarks.md): install duiyi over the image's torch and
# transformers from the carried wheels, check CUDA end to end, run the benchmark, write to $OUT.
# Sized to finish in under 8 minutes on an H100/H200.
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
d = build_marian(Path("/tmp/tiny-marian"))
for kind in ("transformers", "ctranslate2"):
    e = load_engine(str(d), engine=kind, device="cuda")
    t = time.perf_counter(); r = e.translate_batch(["Hello there.", "A second, longer sentence."])
    print(kind, e.device, [x.output_tokens for x in r], f"{(time.perf_counter() - t) * 1000:.1f} ms")
print("torch", torch.__version__, torch.cuda.get_device_name(0))
PYEOF
timeout 420 $PY -m bench --device cuda --naive-limit 128 > "$OUT/bench-cuda.txt" 2> "$OUT/bench-cuda.err"
echo "bench exit $?"
tail -1 "$OUT/bench-cuda.txt" > "$OUT/bench-cuda.json"
tail -20 "$OUT/bench-cuda.txt"
