#!/usr/bin/env bash
# parallel.collective_timeout (--collective-timeout): a rank stopped with SIGSTOP mid-run makes
# its peer's MPI operation time out; the job ends with exit code 4 and one line naming the rank
# that waited, the operation and its group, within the timeout and a few seconds. With a timeout
# set, training gives bit-identical weights (its MPI operations are the nonblocking ones).
# Usage: collective_timeout.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 2 --model.n_embd 32 --model.n_head 2 --model.n_positions 32
      --train.micro_batch 4 --train.eval_every 0 --train.eval_tokens 256 --train.threads 1)

# 1. Rank 1 stopped after the first checkpoint: rank 0 gives up after 3 s.
run="$work/stopped"
"$meshlm" train --nproc 2 "${args[@]}" --train.steps 1000000 --train.save_every 5 --collective-timeout 3 \
  --out "$run" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 200); do [ -s "$run/checkpoints/latest" ] && break; sleep 0.1; done
mpirun_pid=$(pgrep -P "$pid" | head -1)
rank1=""
for p in $(pgrep -P "$mpirun_pid"); do
  tr '\0' '\n' < "/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$p
done
if [ -z "$rank1" ]; then
  fail "could not find rank 1 among mpirun's children"
  kill "$pid"
else
  kill -STOP "$rank1"
  t0=$SECONDS
  # A guard against a hang; its output goes nowhere, so that it cannot hold ctest's pipe open.
  ( sleep 30; kill -9 "$pid" "$rank1" ) > /dev/null 2>&1 &
  guard=$!
  wait "$pid"
  rc=$?
  took=$((SECONDS - t0))
  kill $(pgrep -P "$guard") "$guard" 2> /dev/null
  [ "$rc" -eq 4 ] || fail "stopped rank: exit code $rc, expected 4; stderr: $(cat "$work/err")"
  [ "$took" -le 10 ] || fail "stopped rank: the job took $took s to end (timeout 3 s)"
  [ "$(wc -l < "$work/err")" -eq 1 ] || fail "stopped rank: expected one line on stderr: $(cat "$work/err")"
  # Which operation rank 0 is in when rank 1 stops varies (the step's gradient exchange, the
  # loss's all-reduce, ...): any of them, on a group of the run.
  grep -qE "^error: rank 0 timed out after 3 s in [a-z_]+ (from rank 1 of|to rank 1 of|on) the (dp|world) group \(its rank 0 of 2\)" "$work/err" ||
    fail "stopped rank: the line does not name rank 0, its operation and group: $(cat "$work/err")"
  echo "done stopped rank 1: exit $rc after $took s: $(cat "$work/err")"
fi

# 2. A bad value is a user's mistake.
"$meshlm" train "${args[@]}" --train.steps 1 --collective-timeout -1 > "$work/out" 2> "$work/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "^error: parallel.collective_timeout must be" "$work/err" ||
  fail "--collective-timeout -1: exit $rc: $(cat "$work/err")"

# 3. The same weights with and without a timeout, over every kind of MPI operation: MPI's own
#    all-reduce, ZeRO-2's reduce-scatter and all-gather, broadcasts (data parallel), the
#    pipeline's sends and receives.
for layout in "--zero 2 --allreduce native" "--pp 2 --train.grad_accum 2"; do
  for t in 0 30; do
    timeout 120 "$meshlm" train --nproc 2 $layout "${args[@]}" --train.steps 3 --collective-timeout $t \
      --out "$work/same_$t" > "$work/out_$t" 2> "$work/err_$t" || fail "$layout, timeout $t: $(cat "$work/err_$t")"
  done
  cmp -s "$work/same_0/model.safetensors" "$work/same_30/model.safetensors" ||
    fail "$layout: the weights differ with a collective timeout"
  rm -rf "$work/same_0" "$work/same_30"
  echo "done $layout"
done

echo "$failures failed"
[ "$failures" -eq 0 ]
