#!/usr/bin/env bash
# Parameter-server modes against the all-reduce, with and without a straggler and behind an
# emulated network (docs/parallel.md, "Parameter server"): 2 workers (plus 1 server for the
# parameter-server modes), each condition
#   plain      every rank at its own speed
#   slow2      worker 1 slowed 2x (--debug.slow_rank 1 --debug.slow_factor 2)
#   turns2     each worker slowed 2x on every other step, in turn (--debug.slow_alternate true)
#   net        every message behind NET (--emulate-network; the servers' answers too)
# Per run: the job's tokens/s (the `done:` line: every step's global batch over rank 0's wall
# time, evaluation and saving excluded only by their small size), worker 0's median step time
# after two warm-up steps, and the largest staleness recorded. The runs alternate round by
# round, so the machine's noise hits all of them; the table gives medians over rounds.
# Usage: bench/ps_bench.sh BUILD_DIR [STEPS=20] [ROUNDS=3] [NET=latency_ms=2,gbps=1]
set -euo pipefail
build=${1:-build}
steps=${2:-20}
rounds=${3:-3}
net=${4:-latency_ms=2,gbps=1}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--config configs/tiny.toml --model.n_layer 2 --train.micro_batch 8 --train.block_size 64
        --train.steps "$steps" --train.eval_every 0 --train.eval_tokens 512 --train.warmup_steps 1
        --train.threads 1 --data docs/CLI.md)
modes=("allreduce|--nproc 2" "sync|--nproc 3 --sync ps" "async|--nproc 3 --sync ps --ps-mode async"
       "ssp1|--nproc 3 --sync ps --ps-mode ssp --staleness 1")
conditions=("plain|" "slow2|--debug.slow_rank 1 --debug.slow_factor 2"
            "turns2|--debug.slow_alternate true --debug.slow_factor 2" "net|--emulate-network $net")

run() {  # NAME ARGS...
  local name=$1
  shift
  rm -rf "$work/run"
  "$meshlm" train "${common[@]}" --out "$work/run" "$@" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  python3 - "$work/run/metrics.jsonl" "$work/log" "$name" >> "$work/results" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
ms = statistics.median(r["ms"] for r in rows)
stale = max((r.get("ps_staleness_max", 0) for r in rows), default=0)
done = re.search(r"^done: .*\(([0-9]+) tok/s\)", open(sys.argv[2]).read(), re.M)
print(sys.argv[3], done.group(1), f"{ms:.1f}", stale)
PY
}

echo "$steps steps per run, $rounds rounds, network $net; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for c in "${conditions[@]}"; do
    IFS='|' read -r cname cflags <<< "$c"
    for m in "${modes[@]}"; do
      IFS='|' read -r mname mflags <<< "$m"
      # shellcheck disable=SC2086
      run "$mname/$cname" $mflags $cflags
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, tok, ms, stale = line.split()
    by.setdefault(name, []).append((float(tok), float(ms), int(stale)))
print(f"{'mode/condition':<16} {'tokens/s':>9} {'vs sync':>8} {'w0 step ms':>11} {'max staleness':>14}   (medians of {len(next(iter(by.values())))} rounds)")
for name, runs in by.items():
    tok = statistics.median(t for t, _, _ in runs)
    ms = statistics.median(m for _, m, _ in runs)
    sync = statistics.median(t for t, _, _ in by["sync/" + name.split("/")[1]])
    print(f"{name:<16} {tok:>9.0f} {tok / sync:>8.2f} {ms:>11.1f} {max(s for _, _, s in runs):>14}")
PY
