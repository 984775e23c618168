#!/usr/bin/env bash
# Tensor-parallel speed and memory on this machine: one config at tp 1 (one process, one
# thread), tp 2 (two ranks, one thread each) and, for comparison, dp 2 (two ranks). Prints
# each run's per-rank memory line, the median step time over rounds (runs alternate), and the
# bytes each rank hands to tensor-parallel all-reduces per step against the formula
#   4 all-reduces of b·s·h floats per layer (2 forward, 2 backward)
#   + 2·b·s·h for the vocabulary-parallel embedding (forward) and LM head (backward)
#   + 3·b·s for the cross-entropy's row max, sum of exponentials and target logit.
# Usage: bench/tp_bench.sh BUILD_DIR [CONFIG=small] [STEPS=6] [ROUNDS=3]
set -euo pipefail
build=${1:-build}
config=${2:-small}
steps=${3:-6}
rounds=${4:-3}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
common=(--config "configs/$config.toml" --data "$text" --train.steps "$steps" --train.eval_every 0
        --train.eval_tokens 256 --train.warmup_steps 1)

run() {  # NAME ARGS...
  local name=$1
  shift
  rm -rf "$work/run"
  "$meshlm" train "${common[@]}" --out "$work/run" "$@" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  grep "^memory per rank" "$work/log" | sed "s/^/$name: /" > "$work/mem_$name"
  python3 - "$work/run/metrics.jsonl" "$name" >> "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
print(sys.argv[2], f"{statistics.median(r['ms'] for r in rows):.1f}", rows[-1].get("tp_allreduce_bytes", 0))
PY
}

echo "config $config, $steps steps per run, $rounds rounds; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  run tp1
  run tp2 --nproc 2 --tp 2
  run dp2 --nproc 2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$work"/mem_tp1 "$work"/mem_tp2 "$work"/mem_dp2
python3 - "$work/results" "configs/$config.toml" <<'PY'
import statistics, sys, tomllib
cfg = tomllib.load(open(sys.argv[2], "rb"))
L, C = cfg["model"]["n_layer"], cfg["model"]["n_embd"]
B = cfg.get("train", {}).get("micro_batch", 16)
T = cfg.get("train", {}).get("block_size", 0) or cfg["model"]["n_positions"]
by = {}
for line in open(sys.argv[1]):
    name, ms, tp_bytes = line.split()
    by.setdefault(name, []).append((float(ms), int(tp_bytes)))
base = statistics.median(m for m, _ in by["tp1"])
print(f"{'run':<5} {'step ms':>9} {'vs tp1':>7} {'tp all-reduce bytes/step':>25}")
for name in ["tp1", "tp2", "dp2"]:
    ms = statistics.median(m for m, _ in by[name])
    print(f"{name:<5} {ms:9.1f} {base / ms:6.2f}x {by[name][-1][1]:25d}")
N = B * T
formula = (4 * L + 2) * N * C * 4 + 3 * N * 4
print(f"formula for tp2 (b={B}, s={T}, h={C}, {L} layers): (4·{L} + 2)·b·s·h·4 B + 3·b·s·4 B = {formula} bytes")
PY
