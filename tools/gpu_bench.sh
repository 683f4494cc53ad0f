#!/usr/bin/env bash
# All GPU measurements of issues 3 and 4 in one call on the device machine (H100/H200, 16 cores).
# Writes tables and JSON under ${OUT:-gpu-results}. gymnasium is not on that machine: carry wheels in
# .whl/ (see the device tool's README) and this script installs them into /tmp/site.
set -euo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba-cache
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"

# Issue 3: CPU sims/s/core + self-play evals/s vs pure forward at the same batch (target ratio >= 0.70)
python3 tools/bench_search.py --net 9x9-6x64 19x19-10x128 --device cuda --concurrent 64 --net-sims 200 \
  --max-moves 30 --sims 800 2>&1 | tee "$out/bench_search.txt"

# Issue 4: latency per k (one game at a time, 800 sims), cache on/off, L = 8 and 16, predicted vs measured
python3 tools/bench_speculation.py --device cuda --nets 9x9-6x64 9x9-10x128 --sims 800 --games 1 \
  --leaves 8 16 --cache both --max-moves 60 --json "$out/spec9.json" 2>&1 | tee "$out/bench_spec9.txt"
python3 tools/bench_speculation.py --device cuda --nets 19x19-10x128 --sims 800 --games 1 --k 0 1 2 3 4 \
  --leaves 8 16 --cache on --max-moves 60 --json "$out/spec19.json" 2>&1 | tee "$out/bench_spec19.txt"
# Issue 4 item 6: throughput load (64 concurrent games), evals/s cost of speculation, what auto picks
python3 tools/bench_speculation.py --device cuda --nets 9x9-6x64 --sims 800 --k 0 1 2 3 4 --leaves 8 \
  --cache on --throughput 64 --max-moves 20 --games 1 --json "$out/through9.json" 2>&1 | tee "$out/bench_through9.txt"
