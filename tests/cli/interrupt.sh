#!/usr/bin/env bash
# Ctrl-C (SIGINT) or SIGTERM during training: the run saves a checkpoint, exits 128+signal,
# and the last complete checkpoint loads and resumes. A crash (SIGKILL) at any moment leaves
# `latest` pointing to a complete checkpoint. Usage: interrupt.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 1 --model.n_embd 32 --model.n_head 2 --model.n_positions 32
      --train.micro_batch 4 --train.steps 1000000 --train.save_every 20 --train.eval_every 0 --train.threads 1)

wait_for_checkpoint() {  # wait_for_checkpoint RUN_DIR: until a `latest` pointer exists (10 s at most)
  for _ in $(seq 100); do [ -s "$1/checkpoints/latest" ] && return 0; sleep 0.1; done
  return 1
}

for sig in INT TERM; do
  run="$work/run_$sig"
  "$meshlm" train "${args[@]}" --out "$run" > "$work/out_$sig" 2>&1 &
  pid=$!
  wait_for_checkpoint "$run"
  sleep 0.3
  kill -s "$sig" "$pid"
  wait "$pid"; rc=$?
  expected=$([ "$sig" = INT ] && echo 130 || echo 143)
  check "sig$sig exit code" $([ "$rc" -eq "$expected" ]; echo $?) "exit $rc, expected $expected; output: $(tail -2 "$work/out_$sig")"
  grep -q "stopped by signal" "$work/out_$sig"
  check "sig$sig message" $? "no 'stopped by signal' line: $(tail -2 "$work/out_$sig")"
  latest=$(cat "$run/checkpoints/latest" 2>/dev/null)
  step=$((10#${latest#step_}))
  "$meshlm" eval --checkpoint "$run" --data "$work/text.txt" --tokens 256 > "$work/eval_$sig" 2>&1
  check "sig$sig latest checkpoint ($latest) loads" $? "$(cat "$work/eval_$sig")"
  "$meshlm" train --resume "$run" --data "$work/text.txt" --train.steps $((step + 3)) > "$work/resume_$sig" 2>&1
  check "sig$sig resume to step $((step + 3))" $? "$(tail -3 "$work/resume_$sig")"
  grep -q "step $((step + 3))/$((step + 3))" "$work/resume_$sig"
  check "sig$sig resumed at the right step" $? "$(grep step "$work/resume_$sig" | head -3)"
done

# SIGKILL at arbitrary moments, possibly in the middle of writing a checkpoint.
run="$work/run_KILL"
for delay in 0.7 1.1 1.3; do
  "$meshlm" train "${args[@]}" --out "$run" $([ -d "$run/checkpoints" ] && echo --resume) > /dev/null 2>&1 &
  pid=$!
  wait_for_checkpoint "$run"
  sleep "$delay"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  "$meshlm" eval --checkpoint "$run" --data "$work/text.txt" --tokens 128 > "$work/eval_kill" 2>&1
  status=$?  # before the message's command substitutions, which set $? themselves
  check "SIGKILL after ${delay}s: latest ($(cat "$run/checkpoints/latest")) loads" "$status" "$(cat "$work/eval_kill")"
done

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
