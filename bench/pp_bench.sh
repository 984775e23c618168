#!/usr/bin/env bash
# Pipeline parallelism on this machine: one config on 2 stages (one rank each, one thread),
# GPipe and 1F1B, with M = 4 and 8 micro-batches. Prints per stage the idle fraction (time a
# stage waits for its neighbour, median over the timed steps) next to the ideal bubble
# (P−1)/(M+P−1), the activation memory per stage (GPipe holds all M micro-batches, 1F1B at
# most P − stage), and the step time against one process.
# Usage: bench/pp_bench.sh BUILD_DIR [CONFIG=small] [MICRO_BATCH=2] [STEPS=5]
set -euo pipefail
build=${1:-build}
config=${2:-small}
micro=${3:-2}
steps=${4:-5}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
echo "config $config, micro-batch $micro, $steps steps per run; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for M in 4 8; do
  for run in "pp1" "pp2 gpipe" "pp2 1f1b"; do
    set -- $run
    rm -rf "$work/run"
    args=(--config "configs/$config.toml" --data "$text" --train.steps "$steps" --train.eval_every 0
          --train.eval_tokens 256 --train.warmup_steps 1 --train.micro_batch "$micro" --train.grad_accum "$M"
          --out "$work/run")
    [ "$1" = pp2 ] && args+=(--nproc 2 --pp 2 --parallel.pp_schedule "$2")
    "$meshlm" train "${args[@]}" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    python3 - "$work/run/metrics.jsonl" "$work/log" "M=$M $run" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
ms = statistics.median(r["ms"] for r in rows)
idle = ""
if "pipe_idle" in rows[0]:
    stages = len(rows[0]["pipe_idle"])
    idle = " idle " + " ".join(f"s{s} {100 * statistics.median(r['pipe_idle'][s] for r in rows):.1f}%" for s in range(stages))
acts = re.findall(r"activations ([0-9.]+ MiB)", open(sys.argv[2]).read())
print(f"{sys.argv[3]:<16} {ms:8.1f} ms/step{idle}  activations per stage: {', '.join(acts)}")
PY
  done
  echo "ideal bubble (P-1)/(M+P-1) for P=2, M=$M: $(python3 -c "print(f'{100/($M+1):.1f}%')")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
