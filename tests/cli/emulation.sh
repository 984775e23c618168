#!/usr/bin/env bash
# The benchmark aids of docs/parallel.md ("Measuring on one machine"): a 2-rank data-parallel
# run with rank 1 slowed 3x (debug.slow_rank, debug.slow_factor), or with each rank slowed 3x on
# every other step (debug.slow_alternate), is slower per step than without,
# and one with an emulated 20 ms network (parallel.emulate_network) is slower per step by at
# least the modelled delay of its gradient all-reduce; both train the same model bit for bit.
# Malformed settings exit 2 with one line naming the key.
# Usage: emulation.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$here/checks.sh"
args=(--config "$src/configs/tiny.toml" --model.n_layer 2 --train.micro_batch 16 --train.grad_accum 2 --train.block_size 64
      --train.eval_tokens 512 --train.eval_every 0 --train.steps 12 --train.threads 1 --data "$src/docs/CLI.md")
train() {  # train NAME ARGS...: exit code in $rc, stderr in $work/err
  local name=$1
  shift
  timeout 120 "$meshlm" train "$@" "${args[@]}" > "$work/out_$name" 2> "$work/err"
  rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err")"
}
# step_ms RUN: the median step time in metrics.jsonl past the first (warm-up) step. On the shared
# 2-core machine one run's step times vary up to 3x with the load of other processes.
step_ms() {
  python3 -c '
import json, statistics, sys
ms = [json.loads(l)["ms"] for l in open(sys.argv[1]) if "\"loss\"" in l][1:]
print(statistics.median(ms))' "$1/metrics.jsonl"
}
# identical NAME RUN_A RUN_B: the same losses and the same model file, byte for byte.
identical() {
  cmp -s "$2/model.safetensors" "$3/model.safetensors" &&
    diff <(grep -o '"loss": [^,]*' "$2/metrics.jsonl") <(grep -o '"loss": [^,]*' "$3/metrics.jsonl") > /dev/null
  check "$1" $? "the runs differ"
}

train plain --nproc 2 --out "$work/plain"
plain=$(step_ms "$work/plain")

# 1. The straggler: rank 1 sleeps twice its compute time after each micro-batch; rank 0 waits
#    for it in the all-reduce, so the step (timed on rank 0) follows the slow rank.
train slow --nproc 2 --debug.slow_rank 1 --debug.slow_factor 3 --out "$work/slow"
slow=$(step_ms "$work/slow")
echo "  median step: plain $plain ms, rank 1 slowed 3x $slow ms"
python3 -c "import sys; sys.exit(0 if $slow > 1.5 * $plain else 1)"
check "a rank slowed 3x makes the step > 1.5x longer" $? "$slow ms vs $plain ms"
identical "the slowed run trains the same model bit for bit" "$work/plain" "$work/slow"

# 1b. A straggler that moves: each rank slowed 3x on every other step, so at every step one of
#     the two is slow and the step (which waits for both) is slowed every time.
train alternate --nproc 2 --debug.slow_alternate true --debug.slow_factor 3 --out "$work/alternate"
alternate=$(step_ms "$work/alternate")
echo "  median step: plain $plain ms, ranks slowed 3x in turn $alternate ms"
python3 -c "import sys; sys.exit(0 if $alternate > 1.5 * $plain else 1)"
check "ranks slowed 3x in turn make every step > 1.5x longer" $? "$alternate ms vs $plain ms"
identical "the run slowed in turn trains the same model bit for bit" "$work/plain" "$work/alternate"

# 2. The emulated network: one gradient bucket (1.8 MB) all-reduced per step over 2 ranks is
#    2 messages of 20 ms, the modelled delay the step must gain at least.
train net --nproc 2 --parallel.emulate_network latency_ms=20 --out "$work/net"
net=$(step_ms "$work/net")
echo "  median step: plain $plain ms, latency_ms=20 $net ms"
python3 -c "import sys; sys.exit(0 if $net - $plain >= 40 else 1)"
check "a 20 ms network adds at least the all-reduce's 40 ms per step" $? "$net ms vs $plain ms"
identical "the emulated network trains the same model bit for bit" "$work/plain" "$work/net"

# 3. Malformed settings: one line, exit 2, naming the key.
train bad1 --parallel.emulate_network "latency_ms=five" --out "$work/bad1"
refused "malformed network spec" "parallel.emulate_network: 'latency_ms=five' is not a number"
train bad2 --parallel.emulate_network "latency_ms=5,bandwidth=1" --out "$work/bad2"
refused "unknown part of the network spec" "parallel.emulate_network: unknown part 'bandwidth'"
train bad3 --debug.slow_rank 0 --debug.slow_factor 0.5 --out "$work/bad3"
refused "slow_factor below 1" "debug.slow_factor must be a number >= 1"
train bad4 --nproc 2 --debug.slow_rank 2 --debug.slow_factor 2 --out "$work/bad4"
refused "slow_rank outside the job" "debug.slow_rank 2 is not a rank of this job \(2 processes\)"

train bad5 --debug.slow_rank 0 --debug.slow_alternate true --debug.slow_factor 2 --out "$work/bad5"
refused "two kinds of straggler" "debug.slow_alternate slows every rank in turn; debug.slow_rank names one straggler"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
