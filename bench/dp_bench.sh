#!/usr/bin/env bash
# Data-parallel speed on this machine: tokens/s of one config at
#   dp1-1t     one process, one thread (the baseline)
#   dp2-1t     two ranks, one thread each, buckets reduced during the backward pass
#   dp2-1t-seq two ranks, one thread each, buckets reduced after the backward pass
#   dp1-2t     one process, two threads (the thread-versus-rank trade)
# The runs alternate round by round, so the machine's noise hits all of them; each run's step
# time is the median of its steps after two warm-up steps, and the table gives the median
# over rounds. "comm" is the time a step waits for gradient communication after its backward.
# Usage: bench/dp_bench.sh BUILD_DIR [CONFIG=small] [STEPS=8] [ROUNDS=3]
set -euo pipefail
build=${1:-build}
config=${2:-small}
steps=${3:-8}
rounds=${4:-3}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--config "configs/$config.toml" --data "$text" --train.steps "$steps" --train.eval_every 0
        --train.eval_tokens 256 --train.warmup_steps 1)

run() {  # NAME THREADS ARGS...
  local name=$1 threads=$2
  shift 2
  rm -rf "$work/run"
  OMP_NUM_THREADS=$threads "$meshlm" train "${common[@]}" --out "$work/run" "$@" > "$work/log" 2>&1 ||
    { cat "$work/log"; exit 1; }
  python3 - "$work/run/metrics.jsonl" "$name" >> "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
ms = statistics.median(r["ms"] for r in rows)
comm = statistics.median(r.get("comm_ms", 0.0) for r in rows)
tok = statistics.median(r["tokens_per_s"] for r in rows)
print(sys.argv[2], f"{ms:.1f}", f"{comm:.1f}", f"{tok:.0f}")
PY
}

echo "config $config, $steps steps per run, $rounds rounds; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  run dp1-1t 1
  run dp2-1t 1 --nproc 2
  run dp2-1t-seq 1 --nproc 2 --parallel.overlap false
  run dp1-2t 2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, ms, comm, tok = line.split()
    by.setdefault(name, []).append((float(ms), float(comm), float(tok)))
base = statistics.median(t for _, _, t in by["dp1-1t"])
print(f"{'run':<12} {'step ms':>9} {'comm ms':>8} {'comm %':>7} {'tokens/s':>9} {'vs dp1-1t':>9}   (medians of {len(by['dp1-1t'])} rounds)")
for name in ["dp1-1t", "dp2-1t", "dp2-1t-seq", "dp1-2t"]:
    ms = statistics.median(m for m, _, _ in by[name])
    comm = statistics.median(c for _, c, _ in by[name])
    tok = statistics.median(t for _, _, t in by[name])
    print(f"{name:<12} {ms:9.1f} {comm:8.1f} {100 * comm / ms:6.1f}% {tok:9.0f} {tok / base:8.2f}x")
PY
