#!/usr/bin/env bash
# The supervisor (`train --max-restarts`, `--hang-timeout`): kill -9 at random moments, of the
# single process of a 1-rank run and of a random rank of a `--nproc 2` run, and a rank stopped
# with SIGSTOP; every supervised run finishes with the weights of an uninterrupted run, byte for
# byte, every checkpoint left on disk verifies, and events.jsonl tells each start, death and restart. Also: a user's error is not
# retried, SIGTERM to the supervisor stops the job (no restart), and `meshlm supervise` does the
# same over a launch the user writes (mpirun).
# Usage: supervisor.sh MESHLM_BINARY [SEED]   (the kill moments follow from SEED; they are printed)
set -u
meshlm=$1
seed=${2:-18}
here=$(cd "$(dirname "$0")" && pwd)
RANDOM=$seed
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)  # memory: checkpoints are many and small
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 2 --model.n_embd 64 --model.n_head 2 --model.n_positions 64
      --train.micro_batch 8 --train.save_every 10 --train.eval_every 0 --train.threads 1)

# supervised_kills NAME NPROC KILLS STEPS [--hang]: an uninterrupted run, then a supervised one
# whose random rank is killed KILLS times at random moments (and with --hang, then stopped:
# see fault_injector.py); the two final models must be the same bytes.
supervised_kills() {
  local name=$1 nproc=$2 kills=$3 steps=$4 hang=${5:-}
  local launch=() ref="$work/${name}_ref" run="$work/$name"
  [ "$nproc" -gt 1 ] && launch=(--nproc "$nproc")
  "$meshlm" train "${args[@]}" "${launch[@]}" --train.steps "$steps" --out "$ref" > "$work/${name}_ref.log" 2>&1
  check "$name: uninterrupted run" $? "$(tail -3 "$work/${name}_ref.log")"
  # Faults come within the run's own training time ("done: N steps (...) in S s"), half of it
  # spread over them, so that the run outlasts them.
  local train_s window_s
  train_s=$(sed -n 's/^done: .* in \([0-9.]*\) s,.*/\1/p' "$work/${name}_ref.log")
  window_s=$(python3 -c "print(round(${train_s:-1} / (2 * $kills), 3))")
  echo "     $name: training takes ${train_s} s uninterrupted; faults come 0-${window_s} s after a checkpoint (seed $seed)"
  local hang_args=()
  [ -n "$hang" ] && hang_args=(--hang-timeout 5)  # above the set-up of a loaded machine
  "$meshlm" train "${args[@]}" "${launch[@]}" --train.steps "$steps" --out "$run" --max-restarts $((kills + 1)) \
    --restart-backoff 0.05 "${hang_args[@]}" > "$work/$name.log" 2>&1 &
  local supervisor=$!
  python3 "$here/fault_injector.py" "$run" "$nproc" "$kills" "$window_s" "$((seed + nproc))" "$work/$name.log" $hang \
    > "$work/${name}_faults"
  check "$name: $kills faults injected" $? "$(cat "$work/${name}_faults")"
  grep -v '^killed:\|^stopped:' "$work/${name}_faults"
  local -a kill_ranks
  read -r -a kill_ranks <<< "$(sed -n 's/^killed: *//p' "$work/${name}_faults")"
  if [ -n "$hang" ]; then
    local rank pid detected
    read -r rank pid detected <<< "$(sed -n 's/^stopped: //p' "$work/${name}_faults")"
    check "$name: the hang is detected (after ${detected:-?} s; timeout 5 s)" \
      $(python3 -c "print(0 if ${detected:-99} <= 8 else 1)") "$(grep -v '^step' "$work/$name.log" | tail -3)"
    grep "job hung" "$work/$name.log" | grep -q "on rank $rank (pid $pid on [^:]*: stopped or frozen"
    check "$name: the hang message names rank $rank first" $? "$(grep "job hung" "$work/$name.log")"
    grep "job hung" "$work/$name.log" | sed 's/^/     /'
  fi
  wait "$supervisor"
  local rc=$?
  check "$name: the supervised run finishes" "$rc" "exit $rc: $(grep -v '^step' "$work/$name.log" | tail -5)"
  cmp -s "$ref/model.safetensors" "$run/model.safetensors"
  check "$name: final weights identical to the uninterrupted run's" $? "model.safetensors differ"
  "$meshlm" verify "$run" > "$work/${name}_verify.log" 2>&1
  check "$name: every checkpoint on disk verifies" $? "$(cat "$work/${name}_verify.log")"

  # events.jsonl: a start for each attempt, each death with its cause and rank, a restart from
  # the checkpoint the next start resumes, and the end.
  python3 - "$run/events.jsonl" "$nproc" "$hang" "${kill_ranks[@]}" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
nproc, hang, killed = int(sys.argv[2]), sys.argv[3], [int(r) for r in sys.argv[4:]]
kinds = [e["event"] for e in events]
deaths = [e for e in events if e["event"] == "exit" and e["exit_code"] != 0]
restarts = [e for e in events if e["event"] == "restart"]
starts = [e for e in events if e["event"] == "start"]
expected = len(killed) + (1 if hang else 0)
assert all("time" in e for e in events), "an event without time"
assert len(deaths) == expected, f"{len(deaths)} deaths, expected {expected}: {kinds}"
assert len(restarts) == expected and len(starts) == expected + 1, kinds
assert events[-1]["event"] == "end" and events[-1]["outcome"] == "finished" and events[-1]["exit_code"] == 0, events[-1]
for d, r in zip(deaths, killed):
    assert d["cause"] in ("signal", "exit"), d
    if nproc == 1: assert d.get("signal") == 9 and d.get("rank") == 0, d
    if "rank" in d: assert d["rank"] == r or (isinstance(d["rank"], list) and r in d["rank"]), (d, r)
if hang:
    h = deaths[-1]
    assert h["cause"] == "hung" and h["exit_code"] == 4 and h["stuck"][0]["rank"] == h["rank"], h
for restart, start in zip(restarts, starts[1:]):
    assert restart["resume_step"] == start["resume_step"] and restart["resume_step"] is not None, (restart, start)
    assert restart["backoff_s"] == 0.05, restart  # every restart resumed from a newer checkpoint
EOF
  check "$name: events.jsonl" $? "$(cat "$run/events.jsonl")"
  [ ! -e "$run/.heartbeat" ]
  check "$name: no heartbeat files left" $? "$(ls -a "$run")"
}

supervised_kills one_rank 1 8 200
supervised_kills two_ranks 2 2 200 --hang  # 200 (also below): with background checkpoint writes 100 steps train faster than a restart is noticed

# `meshlm supervise` over the user's own mpirun: a random rank killed once at a random moment;
# the same final weights as the uninterrupted `--nproc 2` run.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run="$work/own_mpirun"
"$meshlm" supervise --out "$run" --max-restarts 2 --restart-backoff 0.05 --hang-timeout 30 -- \
  mpirun -np 2 --oversubscribe --bind-to none "$meshlm" train "${args[@]}" --train.steps 200 --out "$run" \
  > "$work/own_mpirun.log" 2>&1 &
supervisor=$!
python3 "$here/fault_injector.py" "$run" 2 1 0.5 "$((seed + 3))" "$work/own_mpirun.log" > "$work/own_mpirun_faults"
check "supervise -- mpirun: a fault injected" $? "$(cat "$work/own_mpirun_faults")"
grep -v '^killed:' "$work/own_mpirun_faults"
wait "$supervisor"
rc=$?
check "supervise -- mpirun: the run finishes" "$rc" "exit $rc: $(grep -v '^step' "$work/own_mpirun.log" | tail -5)"
cmp -s "$work/two_ranks_ref/model.safetensors" "$run/model.safetensors"
check "supervise -- mpirun: final weights identical to the uninterrupted run's" $? "model.safetensors differ"
[ "$(grep -c '"event":"restart"' "$run/events.jsonl")" -eq 1 ]
check "supervise -- mpirun: one restart in events.jsonl" $? "$(cat "$run/events.jsonl")"

# A user's mistake is not retried.
"$meshlm" train "${args[@]}" --train.steps 10 --train.lr nonsense --out "$work/bad" --max-restarts 3 > "$work/bad.log" 2>&1
rc=$?
check "user error: exit 2, not restarted" $([ "$rc" -eq 2 ] && [ "$(grep -c '"start"' "$work/bad/events.jsonl")" -eq 1 ]; echo $?) \
  "exit $rc: $(cat "$work/bad.log") $(cat "$work/bad/events.jsonl")"
"$meshlm" train "${args[@]}" --train.steps 10 --max-restarts 3 > "$work/noout.log" 2>&1
check "--max-restarts needs --out" $([ $? -eq 2 ] && grep -q "error: --max-restarts.*--out" "$work/noout.log"; echo $?) "$(cat "$work/noout.log")"

# SIGTERM to the supervisor reaches the job, which saves and stops: no restart.
run="$work/term"
"$meshlm" train "${args[@]}" --train.steps 1000000 --out "$run" --max-restarts 3 > "$work/term.log" 2>&1 &
supervisor=$!
for _ in $(seq 600); do [ -s "$run/checkpoints/latest" ] && break; sleep 0.05; done
kill -TERM "$supervisor"
wait "$supervisor"
rc=$?
check "SIGTERM: the job stops with 143, not restarted" \
  $([ "$rc" -eq 143 ] && grep -q "stopped by signal" "$work/term.log" && [ "$(grep -c '"start"' "$run/events.jsonl")" -eq 1 ]; echo $?) \
  "exit $rc: $(grep -v '^step' "$work/term.log" | tail -3) $(cat "$run/events.jsonl")"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
