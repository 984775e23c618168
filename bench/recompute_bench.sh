#!/usr/bin/env bash
# Activation recomputation on this machine: one config with --recompute none, selective and
# full, one process and one thread; prints the activation memory (start-up line) and the
# median step time of each, alternating the modes round by round.
# Usage: bench/recompute_bench.sh BUILD_DIR [CONFIG=small] [STEPS=5] [ROUNDS=2]
set -euo pipefail
build=${1:-build}
config=${2:-small}
steps=${3:-5}
rounds=${4:-2}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMP_NUM_THREADS=1
echo "config $config, $steps steps per run, $rounds rounds; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for mode in none selective full; do
    rm -rf "$work/run"
    "$meshlm" train --config "configs/$config.toml" --data "$text" --train.steps "$steps" --train.eval_every 0 \
      --train.eval_tokens 256 --recompute "$mode" --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    python3 - "$work/run/metrics.jsonl" "$work/log" "$mode" >> "$work/results" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
act = re.search(r"activations ([0-9.]+) MiB", open(sys.argv[2]).read()).group(1)
print(sys.argv[3], f"{statistics.median(r['ms'] for r in rows):.1f}", act, rows[-1]["loss"])
PY
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    mode, ms, act, loss = line.split()
    by.setdefault(mode, []).append((float(ms), float(act), loss))
base = statistics.median(m for m, _, _ in by["none"])
print(f"{'recompute':<10} {'step ms':>9} {'overhead':>9} {'activations MiB':>16} {'last loss':>10}")
for mode in ["none", "selective", "full"]:
    ms = statistics.median(m for m, _, _ in by[mode])
    print(f"{mode:<10} {ms:9.1f} {100 * (ms / base - 1):8.1f}% {by[mode][0][1]:16.2f} {by[mode][-1][2]:>10}")
PY
