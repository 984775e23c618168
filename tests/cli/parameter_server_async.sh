#!/usr/bin/env bash
# Parameter servers in async and ssp modes (parallel.ps_mode, docs/parallel.md): ssp with
# staleness 0 trains what one process trains (SGD without momentum or clipping, where the
# workers' separate updates add up to the sync one), workers that are tp groups included; the
# recorded staleness never exceeds the ssp bound (1 and 3, 3 workers of 2, 2 and 1 rows); async
# runs to completion, its loss decreases, it resumes from its checkpoint, a straggler does not
# hold back the leading worker, and SIGTERM stops it with a checkpoint; a killed worker or
# server ends an ssp job promptly, and stopped workers a server's wait;
# async and ssp reach a validation loss at most 3% above sync PS's after as many tokens.
# Usage: parameter_server_async.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$here/checks.sh"
args=(--config "$src/configs/tiny.toml" --model.n_layer 2 --train.micro_batch 5 --train.block_size 32
      --train.eval_tokens 512 --train.eval_every 0 --train.warmup_steps 1 --train.decay_steps 6
      --train.threads 1 --data "$src/docs/CLI.md")
train() {  # train NAME ARGS...: exit code in $rc
  local name=$1
  shift
  timeout -s KILL 120 "$meshlm" train "$@" "${args[@]}" > "$work/out_$name" 2> "$work/err"
  rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err")"
}

train_over() {  # train_over NAME ARGS...: as train, ARGS overriding the common ones
  local name=$1
  shift
  timeout -s KILL 120 "$meshlm" train "${args[@]}" "$@" > "$work/out_$name" 2> "$work/err"
  rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err")"
}

# 1. ssp with staleness 0 equals one process (SGD: the 3 workers' updates sum to the step's).
sgd=(--optim.name sgd --train.grad_clip 0 --train.steps 6)
train one "${sgd[@]}" --out "$work/one"
train ssp0 --nproc 4 --sync ps --ps-mode ssp --staleness 0 "${sgd[@]}" --out "$work/ssp0"
# The per-step loss of async and ssp is worker 0's own; the weights and the validation loss
# (evaluated on the servers' newest weights) are the run's.
verdict=$(python3 "$here/same_training.py" "$work/one" "$work/ssp0")
l2=$(sed -n 's/.*weights rel L2 \([0-9.e+-]*\).*/\1/p' <<< "$verdict")
val_one=$(sed -n 's/^eval step 6 | val loss \([0-9.]*\).*/\1/p' "$work/out_one")
val_ssp0=$(sed -n 's/^eval step 6 | val loss \([0-9.]*\).*/\1/p' "$work/out_ssp0")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1e-5 and sys.argv[2] == sys.argv[3] != '' else 1)" \
  "${l2:-1}" "$val_one" "$val_ssp0"
check "ssp, staleness 0, 3 workers: the weights of one process (rel L2 $l2), val loss $val_ssp0 = $val_one" $? \
  "differs from one process"

# The same with workers that are tensor-parallel groups: 2 workers of tp 2, 2 servers.
train ssp0_tp --nproc 6 --tp 2 --ps-servers 2 --sync ps --ps-mode ssp --staleness 0 "${sgd[@]}" --out "$work/ssp0_tp"
verdict=$(python3 "$here/same_training.py" "$work/one" "$work/ssp0_tp")
l2=$(sed -n 's/.*weights rel L2 \([0-9.e+-]*\).*/\1/p' <<< "$verdict")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1e-5 else 1)" "${l2:-1}"
check "ssp, staleness 0, 2 workers of tp 2: the weights of one process (rel L2 $l2)" $? "differs from one process"

# 2. The staleness bound: every step's recorded maximum is at most s (and async shows staleness).
stale_max() {  # stale_max RUN: the largest ps_staleness_max in its metrics
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
print(max(s["ps_staleness_max"] for s in steps))
PY
}
# s = 3 with 2 servers, bf16 pushes, and checkpoints and evaluations (rounds) between the steps.
for s in 1 3; do
  more=(--nproc 4)
  [ "$s" -eq 3 ] && more=(--nproc 5 --ps-servers 2 --grad-reduce-dtype bf16 --train.save_every 4 --train.eval_every 5)
  train "ssp$s" --sync ps --ps-mode ssp --staleness "$s" --train.steps 20 "${more[@]}" --out "$work/ssp$s"
  most=$(stale_max "$work/ssp$s")
  [ "$rc" -eq 0 ] && [ -n "$most" ] && [ "$most" -le "$s" ]
  check "ssp staleness $s: the largest recorded staleness is $most" $? "exceeds $s"
done

# 3. Async: completes, the loss falls, a resumed run finishes; SIGTERM saves and stops all ranks.
train async --nproc 3 --sync ps --ps-mode async --train.steps 20 --out "$work/async"
# Worker 0 logs its own steps, which skip ahead when it lags at a meeting: rising, up to 20;
# the run ends at the leader's step 20 with its evaluation.
python3 - "$work/async/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
steps = [l for l in lines if "loss" in l]
numbers = [s["step"] for s in steps]
assert numbers == sorted(set(numbers)) and 10 <= len(numbers) and numbers[-1] <= 20, numbers
assert [l["step"] for l in lines if "val_loss" in l] == [20], lines[-1]
assert steps[-1]["loss"] < 0.8 * steps[0]["loss"], [s["loss"] for s in steps]
assert max(s["ps_staleness_max"] for s in steps) > 0
PY
check "async: 20 steps, the loss falls, staleness recorded" $? "see above"
train async_half --nproc 3 --sync ps --ps-mode async --train.steps 10 --out "$work/async_resume"
train async_rest --nproc 3 --sync ps --ps-mode async --resume "$work/async_resume" --train.steps 20
python3 - "$work/async_resume/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
numbers = [l["step"] for l in lines if "loss" in l]
assert numbers == sorted(set(numbers)) and numbers[-1] <= 20 and any(n > 10 for n in numbers), numbers
assert [l["step"] for l in lines if "val_loss" in l] == [10, 20], lines
PY
[ $? -eq 0 ] && [ "$rc" -eq 0 ] && grep -q '^saved' "$work/out_async_rest"
check "async resumes its checkpoint to the end" $? "exit $rc"

# A straggler: with worker 1 (2 of the 5 rows) slowed 3x, async worker 0 takes all 20 steps and
# the run ends with it; worker 1 takes fewer and skips ahead at the meetings, so the run trains
# fewer than the 20 x 160 tokens sync trains, and more than worker 0's 20 x 96. Sync with the
# same straggler trains all 3200.
tokens() { sed -n 's/^done: .* \([0-9,]*\) tokens .*/\1/p' "$work/out_$1" | tr -d ,; }
slow=(--debug.slow_rank 1 --debug.slow_factor 3 --train.steps 20 --train.eval_every 10)
train straggler_sync --nproc 3 --sync ps "${slow[@]}"
train straggler_async --nproc 3 --sync ps --ps-mode async "${slow[@]}" --out "$work/straggler_async"
python3 - "$work/straggler_async/metrics.jsonl" "$(tokens straggler_sync)" "$(tokens straggler_async)" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
numbers = [s["step"] for s in steps]
sync_tokens, async_tokens = int(sys.argv[2]), int(sys.argv[3])
assert numbers == list(range(1, 21)), numbers
assert max(s["ps_staleness_max"] for s in steps) >= 2, [s["ps_staleness_max"] for s in steps]
assert sync_tokens == 3200 and 20 * 96 < async_tokens < 3200, (sync_tokens, async_tokens)
PY
status=$?
check "async, worker 1 slowed 3x: worker 0 leads all 20 steps, staleness >= 2; $(tokens straggler_async) tokens vs sync's $(tokens straggler_sync)" \
  "$status" "see above"
"$meshlm" train --nproc 3 --sync ps --ps-mode async "${args[@]}" --train.steps 1000000 --train.save_every 5 \
  --out "$work/term" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 200); do [ -s "$work/term/checkpoints/latest" ] && break; sleep 0.1; done
kill -TERM "$pid"
t0=$SECONDS
wait_guarded "$pid"
[ "$rc" -eq 143 ] && [ $((SECONDS - t0)) -le 30 ] && grep -q "^stopped by signal 15" "$work/out"
check "async: SIGTERM stops workers and servers" $? "exit $rc after $((SECONDS - t0)) s: $(cat "$work/err")"

# A worker (rank 1) or the server (rank 2) killed mid-run under ssp ends the job within seconds.
for victim in 1 2; do
  "$meshlm" train --nproc 3 --sync ps --ps-mode ssp --staleness 1 "${args[@]}" --train.steps 1000000 \
    > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 200); do grep -q "^step 3/" "$work/out" && break; sleep 0.1; done
  target=$(rank_pids "$pid" "$victim")
  [ -n "$target" ] && kill -9 "$target"
  t0=$SECONDS
  wait_guarded "$pid"
  [ -n "$target" ] && [ "$rc" -ne 0 ] && [ $((SECONDS - t0)) -le 20 ] && grep -q "rank $victim .*exited on signal 9" "$work/err"
  check "ssp: rank $victim killed, the job ends" $? "exit $rc after $((SECONDS - t0)) s: $(cat "$work/err")"
done

# Every worker stopped (SIGSTOP) under async: the server, which polls its workers, is bounded by
# parallel.collective_timeout as a blocking receive is: exit 4 and its one line (waiting for the
# workers' next message, or in the send of an answer that a stopped worker does not take).
"$meshlm" train --nproc 3 --sync ps --ps-mode async "${args[@]}" --train.steps 1000000 --collective-timeout 3 \
  > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 200); do grep -q "^step 3/" "$work/out" && break; sleep 0.1; done
mapfile -t stopped < <(rank_pids "$pid" "[01]")
[ "${#stopped[@]}" -eq 2 ] && kill -STOP "${stopped[@]}"
t0=$SECONDS
wait_guarded "$pid"
[ "${#stopped[@]}" -eq 2 ] && kill -CONT "${stopped[@]}" 2> /dev/null
[ "$rc" -eq 4 ] && [ $((SECONDS - t0)) -le 20 ] && grep -Eq "^error: rank 2 timed out after [0-9]+ s in (recv on|send to rank [01] of) the world group" "$work/err"
check "async: workers stopped, the server's wait times out" $? "exit $rc after $((SECONDS - t0)) s: $(cat "$work/err")"

# 4. Convergence on real text: 100 steps of 8 sequences of 64 tokens of the docs. Async and ssp
#    (1, 3) end when their leading worker has taken the 100 steps, a lagging worker having
#    trained fewer rows: each must reach a validation loss at most 3% above sync PS's after the
#    same number of tokens (sync evaluated every 5 steps, interpolated between them). The runs
#    differ only in update order and staleness; 3% (0.1 nats) is a twentieth of what the 100
#    steps gain. (Each status is captured before anything else runs: $? is the last command's.)
conv=(--train.steps 100 --train.micro_batch 8 --train.block_size 64 --train.decay_steps 100 --train.warmup_steps 5
      --train.eval_tokens 4096)
train_over conv_sync --nproc 3 --sync ps "${conv[@]}" --train.eval_every 5
for mode in "async|--ps-mode async" "ssp1|--ps-mode ssp --staleness 1" "ssp3|--ps-mode ssp --staleness 3"; do
  IFS='|' read -r name flags <<< "$mode"
  train_over "conv_$name" --nproc 3 --sync ps $flags "${conv[@]}"
  verdict=$(python3 - "$work/out_conv_sync" "$work/out_conv_$name" <<'PY'
import re, sys
evals = r"^eval step (\d+) \| val loss ([0-9.]+)"
sync = [(int(s), float(v)) for s, v in re.findall(evals, open(sys.argv[1]).read(), re.M)]
text = open(sys.argv[2]).read()
loss = float(re.findall(evals, text, re.M)[-1][1])
tokens = int(re.search(r"^done: .* ([0-9,]+) tokens", text, re.M).group(1).replace(",", ""))
at = tokens / 512  # the sync steps that train as many tokens
ref = sync[0][1] if at <= sync[0][0] else sync[-1][1]
for (s0, v0), (s1, v1) in zip(sync, sync[1:]):
    if s0 <= at <= s1:
        ref = v0 + (v1 - v0) * (at - s0) / (s1 - s0)
        break
print(f"{loss:.4f} after {tokens} tokens, sync PS {ref:.4f} after as many")
sys.exit(0 if loss <= 1.03 * ref else 1)
PY
)
  status=$?
  check "$name: val loss $verdict" "$status" "more than 3% above sync"
done

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
