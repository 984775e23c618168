#!/usr/bin/env bash
# Errors under MPI (`train --nproc 2`): an error that one rank meets alone mid-run ends the whole
# job at once with that error's exit code and one "error:" line (no MPI banner, no hang); errors
# every rank meets (set-up, divergence) end it with exit 2 and one line from rank 0.
# Usage: mpi_errors.sh MESHLM_BINARY FAULT_INJECTION_SHIM
set -u
meshlm=$1
shim=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 1 --model.n_embd 32 --model.n_head 2 --model.n_positions 32
      --train.micro_batch 4 --train.eval_every 0 --train.threads 1)

# expect NAME CODE PATTERN: the last run exited CODE and printed one line to stderr, matching PATTERN.
expect() {
  [ "$rc" -eq "$2" ] || fail "$1: exit code $rc, expected $2; stderr: $(cat "$work/err")"
  [ "$(wc -l < "$work/err")" -eq 1 ] || fail "$1: expected one line on stderr, got: $(cat "$work/err")"
  grep -qE "$3" "$work/err" || fail "$1: stderr does not match '$3': $(cat "$work/err")"
  echo "done $1 (exit $rc): $(head -c 160 "$work/err")"
}

# 1. Rank 0's checkpoint write fails (full disk) at step 10, while rank 1 waits in the next
#    step's all-reduce: the job ends within seconds with exit 2 (before: rank 1 waited forever).
for call in write rename; do
  LD_PRELOAD="$shim" MESHLM_FAULT_PATH="$work/run_$call/checkpoints/" MESHLM_FAULT_CALLS=$call \
    timeout 60 "$meshlm" train --nproc 2 "${args[@]}" --train.steps 1000 --train.save_every 10 \
    --out "$work/run_$call" > "$work/out" 2> "$work/err"
  rc=$?
  expect "checkpoint $call fails with ENOSPC on rank 0" 2 "^error: cannot (write|rename into) .*: No space left on device$"
  [ -s "$work/run_$call/checkpoints/latest" ] && fail "$call: a checkpoint was recorded as the latest"
done

# 2. metrics.jsonl on a full disk (a link to /dev/full fails every write with ENOSPC, even as root).
mkdir -p "$work/run_metrics"
ln -s /dev/full "$work/run_metrics/metrics.jsonl"
timeout 60 "$meshlm" train --nproc 2 "${args[@]}" --train.steps 3 --out "$work/run_metrics" > "$work/out" 2> "$work/err"
rc=$?
expect "metrics.jsonl on a full disk" 2 "^error: .*metrics.jsonl.*No space left on device"

# 3. Errors every rank meets stay one line from rank 0, exit 2, without an abort.
timeout 60 "$meshlm" train --nproc 2 "${args[@]}" --train.steps 3 --train.lr -1 > "$work/out" 2> "$work/err"
rc=$?
expect "set-up error on every rank" 2 "^error: train.lr must be positive"
timeout 60 "$meshlm" train --nproc 2 "${args[@]}" --train.steps 50 --train.lr 1e12 --train.grad_clip 0 \
  > "$work/out" 2> "$work/err"
rc=$?
expect "divergence on every rank" 2 "^error: training diverged at step"

echo "$failures failed"
[ "$failures" -eq 0 ]
