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

# Speculation (issue 11): latency per shape with the shipped (trained) 9x9 net, 800 sims, L = 8: chains vs
# trees at the same budget, measured batch costs instead of the H100 model; then random nets of the sizes
# the anchors table has, and 19x19
python3 tools/bench_speculation.py --device cuda --model shipped --sims 800 --games 2 --leaves 8 --cache on \
  --k 0 4 8 16 --tree 16:2:17 16:3:17 16:2:17:51 --json "$out/spec9_trained.json" 2>&1 | tee "$out/bench_spec9_trained.txt"
python3 tools/bench_speculation.py --device cuda --nets 9x9-6x64 --sims 800 --games 1 --leaves 8 --cache on \
  --k 0 4 16 --tree 16:2:17:51 --max-moves 60 --json "$out/spec9.json" 2>&1 | tee "$out/bench_spec9.txt"
python3 tools/bench_speculation.py --device cuda --nets 19x19-10x128 --sims 800 --games 1 --k 0 4 8 \
  --tree 8:2:9:27 --leaves 8 --cache on --max-moves 60 --json "$out/spec19.json" 2>&1 | tee "$out/bench_spec19.txt"
# Throughput load (64 concurrent games): evals/s cost of speculation, what auto picks (within 5 % of k = 0)
python3 tools/bench_speculation.py --device cuda --nets 9x9-6x64 --sims 800 --k 0 1 2 --leaves 8 \
  --cache on --throughput 64 --max-moves 20 --games 1 --json "$out/through9.json" 2>&1 | tee "$out/bench_through9.txt"
