#!/usr/bin/env bash
# The throughput check (issue 15) in one call, every table under one results folder:
#
#   tools/gpu_bench.sh                  # the device machine (one H200, 16 cores): CUDA, full sizes, <= 550 s
#   tools/gpu_bench.sh --device cpu     # any machine: the same tables at small sizes (docs/performance.md)
#
# Results: ${OUT:-bench-results}/<section>.txt (the table a tool printed), <section>.json where the tool
# writes one, and summary.md: every section's table in order, with its command, exit status and seconds.
# A section that fails or runs past its time limit is recorded as such and the script goes on.
#
# Sections: the GPU tests (CUDA graphs, bf16, pinned buffers, AMP training; skips name the missing GPU on a
# CPU); a smoke run of `selfplay --workers 4` on one shared CUDA evaluator; the forward ceiling of our own evaluator (eager vs CUDA graph, batch 1..2048) and self-play evals/s
# with 1 and N worker processes, each with its own net or all on one shared evaluator process, against that
# ceiling (specmcts/bench/throughput.py); self-play evals/s vs the forward pass at the same batch in one process
# (specmcts/bench/search.py, 9x9 6x64 and 19x19 10x128); latency per speculation depth k (specmcts bench speculation),
# on the real GPU and, the same command with --emulate h100, on the emulated H100 (the package's H100 table,
# specmcts/engine/emulate.py), then both side by side (speculation9_compare): the check of the emulation against a
# device (an H200 machine runs faster than the H100 table says: its name is in summary.md); Ray scaling over
# 1, 2, 4, 8 worker actors (specmcts bench ray_scaling; needs Ray, which the device machine lacks unless carried).
#
# The device machine lacks gymnasium and sgfmill: carry their wheels in .whl/ (the device tool's README);
# this script installs them into /tmp/site.
set -uo pipefail
device=cuda
if [[ "${1:-}" == "--device" ]]; then device=${2:?--device cpu or cuda}; fi
out=${OUT:-bench-results}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba-cache}
py=${PYTHON:-python3}
started=$(date +%s)
summary="$out/summary.md"
{
  echo "# tools/gpu_bench.sh --device $device, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  if [[ $device == cuda ]]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi
  echo "$(nproc) cores; $($py -c 'import torch; print("torch", torch.__version__)' 2>&1)"
} > "$summary"

# section NAME SECONDS COMMAND...: run it under a time limit, keep its output, add it to the summary
section() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${limit} s): $*" >&2
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$out/$name.txt" 2>"$out/$name.err"
  local rc=$? t1=$(date +%s)
  {
    echo
    echo "## $name"
    echo
    echo "\`$*\` -> exit $rc in $((t1 - t0)) s$([[ $rc == 124 || $rc == 130 ]] && echo ' (time limit)')"
    echo
    cat "$out/$name.txt"
  } >> "$summary"
  tail -n 3 "$out/$name.txt" >&2
}

if [[ $device == cuda ]]; then
  section gpu_tests 70 $py -m pytest -q -rs -p no:cacheprovider tests/test_evaluator.py tests/test_network.py \
    tests/test_train.py -k "cuda or gpu or graph or amp or pinned or bf16 or device"
  section shared_smoke 35 $py -m specmcts selfplay --board 9 --workers 4 --games 16 --sims 64 --device cuda \
    --set evaluator.shared=on --out "$out/selfplay" --quiet
  section throughput9 135 $py -m specmcts bench throughput --device cuda --net 9x9-6x64 --workers 1 16 \
    --modes own shared --seconds 20 --sims 100 --concurrent 32 --chunk-games 32 --save "$out/throughput9.json"
  section ceiling19 25 $py -m specmcts bench throughput --device cuda --net 19x19-10x128 --ceiling-only \
    --save "$out/ceiling19.json"
  section search 90 $py -m specmcts bench search --sizes 9 --net 9x9-6x64 19x19-10x128 --device cuda --concurrent 64 \
    --net-sims 200 --max-moves 30 --sims 800 --overlap both --batch-cost
  spec9=(--model shipped --sims 800 --games 1 --leaves 8 --cache on --k 0 4 8 16 --tree 16:2:17 16:2:17:51
         --max-moves 30)
  section speculation9 60 $py -m specmcts bench speculation --device cuda "${spec9[@]}" --overlap both \
    --json "$out/speculation9.json"
  section speculation9_emulated 60 $py -m specmcts bench speculation --device cuda "${spec9[@]}" --emulate h100 \
    --overlap both --json "$out/speculation9_emulated.json" --timeline "$out/speculation9_timeline.png"
  section speculation9_compare 10 $py -m specmcts bench speculation --compare "$out/speculation9.json" \
    "$out/speculation9_emulated.json"
  section speculation19 35 $py -m specmcts bench speculation --device cuda --nets 19x19-10x128 --sims 800 --games 1 \
    --k 0 4 8 --leaves 8 --cache on --max-moves 40 --json "$out/speculation19.json"
  section ray 30 $py -m specmcts bench ray_scaling --config configs/go9.yaml --workers 1 2 4 8 --seconds 6
else
  section gpu_tests 120 $py -m pytest -q -rs -p no:cacheprovider tests/test_evaluator.py tests/test_network.py \
    tests/test_train.py -k "cuda or gpu or graph or amp or pinned or bf16 or device"
  section throughput9 300 $py -m specmcts bench throughput --device cpu --net 9x9-2x32 --workers 1 2 \
    --modes own shared --seconds 40 --sims 64 --concurrent 8 --chunk-games 8 --save "$out/throughput9.json"
  section search 120 $py -m specmcts bench search --sizes 9 --net 9x9-2x32 --device cpu --concurrent 16 \
    --net-sims 64 --max-moves 20 --sims 800 --trees 16 --overlap both --batch-cost
  section speculation9 150 $py -m specmcts bench speculation --device cpu --model shipped --sims 200 --games 1 \
    --leaves 8 --cache on --k 0 2 4 --max-moves 30 --json "$out/speculation9.json"
  section speculation9_emulated 150 $py -m specmcts bench speculation --device cpu --model shipped --sims 200 \
    --games 1 --leaves 8 --cache on --k 0 2 4 --tree 4:2:5:15 --max-moves 30 --emulate h100 \
    --json "$out/speculation9_emulated.json"
  section ray 150 $py -m specmcts bench ray_scaling --config tiny --workers 1 2 --seconds 30
fi
echo >> "$summary"
echo "total $(( $(date +%s) - started )) s" >> "$summary"
echo "gpu_bench: $device, $(grep -c '^## ' "$summary") sections in $(( $(date +%s) - started )) s; tables in $summary"
