#!/usr/bin/env bash
# SIGINT, SIGTERM and SIGHUP to a training run, in one process and to `train --nproc 2` (from a
# terminal, the launcher gets them; from kill, too): the ranks finish the step, save a checkpoint
# and the job exits with 128 + the signal (130, 143, 129), saying which signal stopped it. A
# terminal's Ctrl-Z (SIGTSTP) pauses the ranks and SIGCONT resumes them.
# Usage: mpi_signals.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 1 --model.n_embd 32 --model.n_head 2 --model.n_positions 32
      --train.micro_batch 4 --train.steps 1000000 --train.save_every 5 --train.eval_every 0 --train.threads 1)

wait_for_checkpoint() {  # wait_for_checkpoint RUN_DIR: until a `latest` pointer exists (20 s at most)
  for _ in $(seq 200); do [ -s "$1/checkpoints/latest" ] && return 0; sleep 0.1; done
  return 1
}

stop_with() {  # stop_with NAME SIGNAL NUMBER [--nproc 2]
  local name=$1 sig=$2 num=$3 run="$work/run_$1"
  shift 3
  "$meshlm" train "$@" "${args[@]}" --out "$run" > "$work/out_$name" 2> "$work/err_$name" &
  local pid=$!
  wait_for_checkpoint "$run" || fail "$name: no checkpoint within 20 s: $(tail -3 "$work/err_$name")"
  sleep 0.3
  if [ "${PAUSE_FIRST:-0}" = 1 ]; then  # a terminal's Ctrl-Z, then `fg`: the ranks stop and go on
    kill -s TSTP "$pid"
    sleep 0.5
    local before after
    before=$(grep -c "^step" "$work/out_$name")
    sleep 1
    after=$(grep -c "^step" "$work/out_$name")
    [ "$after" -eq "$before" ] || fail "$name: $((after - before)) steps while stopped by SIGTSTP"
    kill -s CONT "$pid"
    sleep 0.5
    before=$after
    for _ in $(seq 50); do [ "$(grep -c "^step" "$work/out_$name")" -gt "$before" ] && break; sleep 0.1; done
    [ "$(grep -c "^step" "$work/out_$name")" -gt "$before" ] || fail "$name: no step after SIGCONT"
  fi
  kill -s "$sig" "$pid"
  local t0=$SECONDS
  wait "$pid"
  local rc=$?
  [ $((SECONDS - t0)) -le 30 ] || fail "$name: took $((SECONDS - t0)) s to stop"
  [ "$rc" -eq $((128 + num)) ] || fail "$name: exit code $rc, expected $((128 + num)); stderr: $(tail -3 "$work/err_$name")"
  local line
  line=$(grep "^stopped by signal" "$work/out_$name")
  local step=${line#stopped by signal $num (SIG$sig) at step }
  step=${step%%;*}
  [[ "$step" =~ ^[0-9]+$ ]] || fail "$name: no 'stopped by signal $num (SIG$sig) at step N' line: $(tail -2 "$work/out_$name")"
  [ "$(grep -c "^stopped by signal" "$work/out_$name")" -eq 1 ] || fail "$name: the stop was reported more than once"
  [ "$(cat "$run/checkpoints/latest" 2>/dev/null)" = "$(printf 'step_%06d' "$step")" ] ||
    fail "$name: latest is '$(cat "$run/checkpoints/latest" 2>/dev/null)', not the stopped step $step"
  [ -s "$work/err_$name" ] && fail "$name: unexpected stderr: $(cat "$work/err_$name")"
  echo "done $name: exit $rc, $line"
}

stop_with one_process_SIGHUP HUP 1
for sig in INT:2 HUP:1; do
  stop_with "nproc2_SIG${sig%:*}" "${sig%:*}" "${sig#*:}" --nproc 2
done
PAUSE_FIRST=1 stop_with nproc2_SIGTSTP_SIGCONT_SIGTERM TERM 15 --nproc 2

echo "$failures failed"
[ "$failures" -eq 0 ]
