#!/usr/bin/env bash
# Decentralized training and gradient compression against the all-reduce (docs/parallel.md,
# "Decentralized training" and "Gradient compression"): every method trains the same model on the
# same text for the same tokens, once on the machine's own transport and once behind an emulated
# slow network (--emulate-network NET). Per method: the bytes rank 0 sent per step (mean), the
# ratio to an f32 all-reduce of every gradient, tokens/s (the `done:` line, median over
# rounds) on each network, the validation loss at the end and its distance from the
# all-reduce's, and the seconds of training (the steps' own times, evaluations excluded) until
# the first evaluation within 3% of the all-reduce's final loss, behind the slow network ("-":
# never within the run). The network changes only the time: results are bit for bit the same,
# so the losses come from the first round on the plain network.
# Usage: bench/decentralized_bench.sh BUILD_DIR [DATA=kjv] [STEPS=300] [ROUNDS=1] [NPROC=2] [NET=latency_ms=5,gbps=1]
#   DATA: a text file, or "kjv" for the King James Bible (scripts/kjv-text.sh)
# Environment: ONLY=REGEX runs the methods whose names match (grep -E); NET_RUNS=0 skips the
# slow network (its columns then repeat the plain network's).
set -euo pipefail
build=${1:-build}
data=${2:-kjv}
steps=${3:-300}
rounds=${4:-1}
nproc=${5:-2}
net=${6:-latency_ms=5,gbps=1}
meshlm="$build/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$data" = kjv ]; then
  data="$work/kjv.txt"
  bash scripts/kjv-text.sh "$data"
fi
common=(--config configs/tiny.toml --train.micro_batch 8 --train.block_size 64 --train.steps "$steps"
        --train.warmup_steps 10 --train.eval_every 25 --train.eval_tokens 16384 --train.threads 1
        --data "$data" --nproc "$nproc")
methods=("allreduce|"
         "local_sgd H=10|--sync local_sgd --sync-every 10"
         "diloco H=10 (0.7, 0.9)|--sync diloco --sync-every 10"
         "diloco H=10 (0.3, 0.7)|--sync diloco --sync-every 10 --outer-lr 0.3 --outer-momentum 0.7"
         "gossip ring H=10|--sync gossip --sync-every 10"
         "gossip exponential H=10|--sync gossip --sync-every 10 --gossip-graph exponential"
         "bf16 wire|--grad-reduce-dtype bf16"
         "int8|--compress int8"
         "powersgd r=4|--compress powersgd --compress-rank 4"
         "topk 1%|--compress topk --compress-ratio 0.01"
         "SGD: allreduce|--optim.name sgd --optim.momentum 0.9 --train.lr 0.1"
         "SGD: topk 1%|--optim.name sgd --optim.momentum 0.9 --train.lr 0.1 --compress topk --compress-ratio 0.01")

run() {  # ROUND NETWORK NAME ARGS...
  local round=$1 network=$2 name=$3
  shift 3
  rm -rf "$work/run"
  "$meshlm" train "${common[@]}" --out "$work/run" "$@" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  python3 - "$work/run/metrics.jsonl" "$work/log" "$round" "$network" "$name" >> "$work/results" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
evals = [json.loads(l) for l in open(sys.argv[1]) if '"val_loss"' in l]
val = evals[-1]["val_loss"]
# The training seconds up to each evaluation: "step:val_loss:seconds" items.
curve = ",".join(f'{e["step"]}:{e["val_loss"]}:{sum(r["ms"] for r in rows if r["step"] <= e["step"]) / 1e3:.3f}' for e in evals)
sent = sum(r.get("sync_bytes", 0) for r in rows) / len(rows)
dense = rows[-1].get("compression", 1)
log = open(sys.argv[2]).read()
done = re.search(r"^done: .* in ([0-9.]+) s, .*\(([0-9]+) tok/s\)", log, re.M)
print(sys.argv[3], sys.argv[4], f"{sent:.0f}", dense, done.group(2), done.group(1), val, sys.argv[5], curve, sep="\t")
PY
}

echo "$steps steps of 8 x 64 tokens on $nproc ranks, $rounds round(s), slow network $net; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for m in "${methods[@]}"; do
    IFS='|' read -r name flags <<< "$m"
    grep -qE -- "${ONLY:-.}" <<< "$name" || continue
    # shellcheck disable=SC2086
    run "$r" plain "$name" $flags
    if [ "${NET_RUNS:-1}" = 0 ]; then
      sed -n '$p' "$work/results" | sed 's/\tplain\t/\tslow\t/' >> "$work/results"
    else
      # shellcheck disable=SC2086
      run "$r" slow "$name" $flags --emulate-network "$net"
    fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
names = list(dict.fromkeys(r[7] for r in rows))
def med(name, net, col):
    return statistics.median(float(r[col]) for r in rows if r[7] == name and r[1] == net)
def first(name, col):
    return next(float(r[col]) for r in rows if r[7] == name and r[1] == "plain")
def to_target(name, base):
    target = 1.03 * first(base, 6)
    for r in rows:
        if r[7] == name and r[1] == "slow":
            for item in r[8].split(","):
                step, loss, seconds = item.split(":")
                if float(loss) <= target:
                    return f"{float(seconds):.1f} (step {step})"
            return "-"
print("| method | bytes/step (rank 0) | f32 all-reduce / sent | tokens/s | tokens/s, slow net | val loss | vs all-reduce | s to within 3%, slow net |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    base = "SGD: allreduce" if n.startswith("SGD") else "allreduce"
    val, ref = first(n, 6), first(base, 6)
    print(f"| {n} | {first(n, 2):,.0f} | {first(n, 3):.3g} | {med(n, 'plain', 4):.0f} | {med(n, 'slow', 4):.0f} | "
          f"{val:.4f} | {100 * (val / ref - 1):+.1f}% | {to_target(n, base)} |")
PY
