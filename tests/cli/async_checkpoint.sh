#!/usr/bin/env bash
# Asynchronous checkpoints (train.async_checkpoint): the files written in the background equal
# a synchronous save's; a run stopped by SIGTERM while a write is pending leaves complete,
# verifying checkpoints and resumes bit-exact; a write that fails (ENOSPC injected by the
# LD_PRELOAD shim) keeps the previous checkpoint valid and reports one line, then stops the run
# (exit 2) or lets it finish (train.checkpoint_errors = "continue").
# Usage: async_checkpoint.sh MESHLM_BINARY FAULT_INJECTION_SHIM
set -u
meshlm=$1
shim=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
# A model whose checkpoints (about 40 MB) take a while to write, so that steps run during writes.
args=(--data "$work/text.txt" --model.n_layer 4 --model.n_embd 256 --model.n_head 4 --model.n_positions 32
      --train.micro_batch 2 --train.steps 8 --train.save_every 2 --train.keep_checkpoints 10 --train.eval_every 0
      --train.threads 1)

# 1. Background and synchronous writes give the same files: every file equal byte for byte, but
#    for the one config line that differs (train.async_checkpoint) in trainer_state.json and
#    that file's size and checksum in manifest.json.
"$meshlm" train "${args[@]}" --out "$work/async" > "$work/async.out" 2>&1
check "async run" $? "$(tail -3 "$work/async.out")"
"$meshlm" train "${args[@]}" --train.async_checkpoint false --out "$work/sync" > "$work/sync.out" 2>&1
check "sync run" $? "$(tail -3 "$work/sync.out")"
grep -qE "^checkpoint .*/async/checkpoints/step_000004 \| snapshot [0-9.]+ s( \(after [0-9.]+ s waiting for the writer\))? \| write [0-9.]+ s \| [0-9.]+ MB at [0-9]+ MB/s$" \
  "$work/async.out"
check "checkpoint line with snapshot and write times" $? "$(grep checkpoint "$work/async.out" | head -2)"
same_files=0
for step in 2 4 6 8; do
  name=$(printf "step_%06d" "$step")
  a="$work/async/checkpoints/$name" s="$work/sync/checkpoints/$name"
  [ "$(ls "$a")" = "$(ls "$s")" ] || { same_files=1; echo "  $name: file lists differ"; }
  for f in "$s"/*; do
    f=$(basename "$f")
    case "$f" in
      trainer_state.json)
        diff <(sed 's/"train.async_checkpoint": false/"train.async_checkpoint": true/' "$s/$f") "$a/$f" > /dev/null ;;
      manifest.json)
        diff <(sed '/"trainer_state.json"/,+2d' "$s/$f") <(sed '/"trainer_state.json"/,+2d' "$a/$f") > /dev/null ;;
      *) cmp -s "$s/$f" "$a/$f" ;;
    esac || { same_files=1; echo "  $name/$f differs"; }
  done
done
check "async and sync checkpoints hold the same bytes" $same_files "see above"
cmp -s "$work/async/model.safetensors" "$work/sync/model.safetensors"
check "async and sync final models equal" $? "model.safetensors differ"
"$meshlm" verify "$work/async" > "$work/verify.out" 2>&1
check "async checkpoints verify" $? "$(cat "$work/verify.out")"

# 2. SIGTERM while a write is pending (its temporary directory exists): the run waits for the
#    write, saves its stop checkpoint and exits 143; every checkpoint verifies, nothing
#    temporary stays, and resuming reaches the uninterrupted run's model bit for bit.
run="$work/term"
"$meshlm" train "${args[@]}" --out "$run" > "$work/term.out" 2>&1 &
pid=$!
seen=1
for _ in $(seq 3000); do
  if compgen -G "$run/checkpoints/.tmp.step_*" > /dev/null; then seen=0; break; fi
  sleep 0.005
done
kill -TERM "$pid"
wait "$pid"; rc=$?
check "SIGTERM sent while a checkpoint write was pending" $seen "no temporary checkpoint directory seen"
check "SIGTERM exit code 143" $([ "$rc" -eq 143 ]; echo $?) "exit $rc: $(tail -3 "$work/term.out")"
leftovers=$(ls -A "$run/checkpoints" | grep '^\.tmp' || true)
check "no temporary directory left" $([ -z "$leftovers" ]; echo $?) "$leftovers"
"$meshlm" verify "$run" > "$work/verify.out" 2>&1
check "checkpoints after SIGTERM verify" $? "$(cat "$work/verify.out")"
latest=$(cat "$run/checkpoints/latest")
echo "     stopped at $latest ($(grep -c '^checkpoint' "$work/term.out") checkpoint lines)"
"$meshlm" train --resume "$run" --data "$work/text.txt" > "$work/resume.out" 2>&1
check "resume after SIGTERM" $? "$(tail -3 "$work/resume.out")"
cmp -s "$run/model.safetensors" "$work/async/model.safetensors"
check "resumed run ends with the uninterrupted run's model, bit for bit" $? "model.safetensors differ"

# 3. The write of step 4 fails with ENOSPC (in the background, while step 5 trains).
small=(--data "$work/text.txt" --model.n_layer 1 --model.n_embd 32 --model.n_head 2 --model.n_positions 32
       --train.micro_batch 4 --train.steps 8 --train.save_every 2 --train.eval_every 0 --train.threads 1)
for policy in stop continue; do
  run="$work/full_$policy"
  LD_PRELOAD="$shim" MESHLM_FAULT_PATH="$run/checkpoints/.tmp.step_000004" MESHLM_FAULT_CALLS=write,rename \
    "$meshlm" train "${small[@]}" --train.checkpoint_errors "$policy" --out "$run" > "$work/out" 2> "$work/err"
  rc=$?
  lines=$(wc -l < "$work/err")
  check "$policy: one line on stderr" $([ "$lines" -eq 1 ]; echo $?) "$(cat "$work/err")"
  if [ "$policy" = stop ]; then
    check "stop: exit 2" $([ "$rc" -eq 2 ]; echo $?) "exit $rc"
    grep -qE "^error: cannot write checkpoint step_000004 in .*/full_stop: .*No space left on device$" "$work/err"
    check "stop: the error names the checkpoint and the cause" $? "$(cat "$work/err")"
    check "stop: latest is the previous checkpoint" $([ "$(cat "$run/checkpoints/latest")" = step_000002 ]; echo $?) \
      "latest: $(cat "$run/checkpoints/latest")"
  else
    check "continue: exit 0" $([ "$rc" -eq 0 ]; echo $?) "exit $rc: $(tail -2 "$work/out")"
    grep -qE "^warning: cannot write checkpoint step_000004 in .*/full_continue: .*No space left on device; training goes on" \
      "$work/err"
    check "continue: the warning names the checkpoint and the cause" $? "$(cat "$work/err")"
    check "continue: the run finished with its final checkpoint and model" \
      $([ "$(cat "$run/checkpoints/latest")" = step_000008 ] && [ -s "$run/model.safetensors" ]; echo $?) \
      "latest: $(cat "$run/checkpoints/latest")"
  fi
  check "$policy: no step_000004 and nothing temporary" \
    $([ ! -e "$run/checkpoints/step_000004" ] && [ -z "$(ls -A "$run/checkpoints" | grep '^\.tmp')" ]; echo $?) \
    "$(ls -A "$run/checkpoints")"
  "$meshlm" verify "$run" > "$work/verify.out" 2>&1
  check "$policy: the remaining checkpoints verify" $? "$(cat "$work/verify.out")"
done

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
