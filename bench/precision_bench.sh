#!/usr/bin/env bash
# Mixed precision on this machine: one config trained with --precision fp32, bf16 and fp16
# (one process, one thread) on the King James Bible as bytes, the precisions alternating round
# by round. Prints each precision's median step time, tokens/s and speed-up over fp32, the
# training loss of the last step and the validation loss after the fixed budget of steps.
# Usage: bench/precision_bench.sh BUILD_DIR [CONFIG=small] [STEPS=20] [ROUNDS=2] [PRECISIONS="fp32 bf16 fp16"]
set -euo pipefail
build=${1:-build}
config=${2:-small}
steps=${3:-20}
rounds=${4:-2}
precisions=${5:-fp32 bf16 fp16}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMP_NUM_THREADS=1
echo "config $config, $steps steps per run, $rounds rounds; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for p in $precisions; do
    rm -rf "$work/run"
    "$meshlm" train --config "configs/$config.toml" --data "$text" --train.steps "$steps" --train.eval_every 0 \
      --train.eval_tokens 16384 --precision "$p" --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    python3 - "$work/run/metrics.jsonl" "$p" >> "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "lr" in r]
timed = steps[2:] if len(steps) > 4 else steps
val = [r for r in rows if "val_loss" in r][-1]["val_loss"]
print(sys.argv[2], f"{statistics.median(r['ms'] for r in timed):.1f}",
      f"{statistics.median(r['tokens_per_s'] for r in timed):.1f}", steps[-1]["loss"], val)
PY
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" "$precisions" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    p, ms, tps, loss, val = line.split()
    by.setdefault(p, []).append((float(ms), float(tps), loss, val))
order = sys.argv[2].split()
base = statistics.median(t for _, t, _, _ in by[order[0]])
print(f"{'precision':<10} {'step ms':>9} {'tokens/s':>9} {'vs ' + order[0]:>9} {'last loss':>10} {'val loss':>9}")
for p in order:
    ms = statistics.median(m for m, _, _, _ in by[p])
    tps = statistics.median(t for _, t, _, _ in by[p])
    print(f"{p:<10} {ms:9.1f} {tps:9.1f} {tps / base:8.2f}x {by[p][-1][2]:>10} {float(by[p][-1][3]):9.4f}")
PY
