#!/usr/bin/env bash
# Parameter-server training (parallel.sync = ps, docs/parallel.md): sync mode with 1 to 3
# servers and 2-3 workers (uneven rows: micro_batch 5), workers that are tensor-parallel groups
# included, trains the model one process trains (loss
# per step and final weights within 1e-5 relative); metrics.jsonl has the pushes and pulls; a
# checkpoint of a PS run resumes under all-reduce and the other way round; --init-from reaches
# the servers; SIGTERM stops workers and servers with a checkpoint; the layouts it refuses exit 2 with one line naming the key; a
# worker or server that dies ends the job promptly.
# Usage: parameter_server.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$here/checks.sh"
# 445952 parameters; decay_steps fixed, so that runs of 3 steps resumed to 6 follow the same schedule.
args=(--config "$src/configs/tiny.toml" --model.n_layer 2 --train.micro_batch 5 --train.block_size 32
      --train.eval_tokens 512 --train.eval_every 0 --train.warmup_steps 1 --train.decay_steps 6
      --train.threads 1 --data "$src/docs/CLI.md")
params=445952
same() {  # same NAME RUN_A RUN_B
  local verdict
  verdict=$(python3 "$here/same_training.py" "$2" "$3")
  check "$1 ($verdict)" $? "differs from one process"
}
train() {  # train NAME ARGS...: exit code in $rc, stderr in $work/err
  local name=$1
  shift
  timeout 120 "$meshlm" train "$@" "${args[@]}" > "$work/out_$name" 2> "$work/err"
  rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err")"
}

# 1. Sync PS equals one process: 2 workers (3 + 2 rows) with 1 server, 3 workers (2 + 2 + 1)
#    with 2 servers; gradient clipping is active (the norms exceed train.grad_clip 1). AdamW by
#    default; SGD with fp16 and accumulation below.
train one --train.steps 6 --out "$work/one"
train ps1 --nproc 3 --sync ps --ps-servers 1 --train.steps 6 --out "$work/ps1"
same "1 server, 2 workers" "$work/one" "$work/ps1"
grep -q "parameter servers: 1 server, 2 workers, sync" "$work/out_ps1"
check "the header names the servers" $? "$(head -3 "$work/out_ps1")"
train ps2 --nproc 5 --sync ps --ps-servers 2 --train.steps 6 --out "$work/ps2"
same "2 servers, 3 workers" "$work/one" "$work/ps2"
# Tensor parallelism inside a worker: 2 workers that are tp groups of 2 (3 + 2 rows), 1 server;
# 1 worker of tp 2 with 3 servers, whose ranges cut through the shards (the middle server
# holds a part of each, the others none of one).
train tp_dp2 --nproc 5 --tp 2 --sync ps --ps-servers 1 --train.steps 6 --out "$work/tp_dp2"
same "2 workers of tp 2, 1 server" "$work/one" "$work/tp_dp2"
grep -q "parameter servers: 1 server, 4 workers" "$work/out_tp_dp2"
check "the header counts the worker ranks" $? "$(head -3 "$work/out_tp_dp2")"
train tp_s3 --nproc 5 --tp 2 --sync ps --ps-servers 3 --train.steps 6 --out "$work/tp_s3"
same "1 worker of tp 2, 3 servers" "$work/one" "$work/tp_s3"
# fp16 whose first steps overflow (the servers drop them), gradient accumulation, SGD with momentum.
more=(--precision fp16 --train.loss_scale 16777216 --train.loss_scale_hysteresis 1 --train.grad_accum 2
      --optim.name sgd --optim.momentum 0.9 --train.steps 4)
train one_more "${more[@]}" --out "$work/one_more"
train ps_more --nproc 3 --sync ps "${more[@]}" --out "$work/ps_more"
grep -q "^step 1/4 .*skipped: gradients overflowed" "$work/out_ps_more"
check "fp16: the first step is skipped" $? "$(grep '^step' "$work/out_ps_more")"
same "fp16 skip, grad_accum 2, SGD momentum" "$work/one_more" "$work/ps_more"

# 2. metrics.jsonl: each worker pushes and pulls the parameters once per step (f32; bf16 pushes
#    half the bytes).
python3 - "$work/ps2/metrics.jsonl" $((params * 4)) $((params * 4)) <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
assert len(steps) == 6 and all(s["ps_push_bytes"] == int(sys.argv[2]) and s["ps_pull_bytes"] == int(sys.argv[3])
                               and s["ps_wait_ms"] >= 0 for s in steps), steps
PY
check "metrics.jsonl: ps_push_bytes, ps_pull_bytes, ps_wait_ms per step" $? "see above"
train bf16 --nproc 3 --sync ps --grad-reduce-dtype bf16 --train.steps 2 --out "$work/bf16"
python3 - "$work/bf16/metrics.jsonl" $((params * 2)) <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
assert len(steps) == 2 and all(s["ps_push_bytes"] == int(sys.argv[2]) for s in steps), steps
PY
check "bf16 on the wire: half the push bytes" $? "see above"

# 3. Checkpoints are whole-model files: PS -> all-reduce and all-reduce -> PS resume to the
#    uninterrupted run.
train ps_half --nproc 3 --sync ps --train.steps 3 --out "$work/ps_to_ar"
train ar_rest --resume "$work/ps_to_ar" --train.steps 6
check "an all-reduce run resumes a PS checkpoint" "$rc" "exit code $rc"
same "PS steps 1-3, then one process 4-6" "$work/one" "$work/ps_to_ar"
train ar_half --train.steps 3 --out "$work/ar_to_ps"
train ps_rest --nproc 4 --sync ps --ps-servers 2 --resume "$work/ar_to_ps" --train.steps 6
check "a PS run resumes an all-reduce checkpoint" "$rc" "exit code $rc"
same "one process steps 1-3, then PS 4-6" "$work/one" "$work/ar_to_ps"
# --init-from: the pretrained weights reach the servers before the first update.
init=(--init-from "$work/one" --train.micro_batch 5 --train.block_size 32 --train.eval_tokens 512
      --train.eval_every 0 --train.threads 1 --train.steps 2 --data "$src/docs/CLI.md")  # no model keys
timeout 120 "$meshlm" train "${init[@]}" --out "$work/init_one" > /dev/null 2>&1
timeout 120 "$meshlm" train --nproc 3 --sync ps "${init[@]}" --out "$work/init_ps" > /dev/null 2> "$work/err"
same "--init-from under PS" "$work/init_one" "$work/init_ps"

# 4. SIGTERM: workers finish the step and save; the servers end with them (exit 143, no hang).
"$meshlm" train --nproc 3 --sync ps "${args[@]}" --train.steps 1000000 --train.save_every 5 --out "$work/term" \
  > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 200); do [ -s "$work/term/checkpoints/latest" ] && break; sleep 0.1; done
kill -TERM "$pid"
t0=$SECONDS
wait_guarded "$pid"
[ "$rc" -eq 143 ] && [ $((SECONDS - t0)) -le 30 ] && grep -q "^stopped by signal 15" "$work/out"
check "SIGTERM stops workers and servers" $? "exit $rc after $((SECONDS - t0)) s: $(cat "$work/err")"

# 5. What PS refuses, and too few processes for the servers.
for case in "no worker|parallel.ps_servers|--sync ps" \
            "servers = ranks|parallel.ps_servers|--nproc 2 --sync ps --ps-servers 2" \
            "0 servers|parallel.ps_servers|--nproc 3 --sync ps --ps-servers 0" \
            "ZeRO|parallel.zero|--nproc 3 --sync ps --zero 1" \
            "pipeline|parallel.pp|--nproc 3 --sync ps --pp 2" \
            "fp16 under async|parallel.ps_mode|--nproc 3 --sync ps --ps-mode async --precision fp16" \
            "dp that does not add up|parallel.dp|--nproc 4 --sync ps --dp 2"; do
  IFS='|' read -r name key cmdline <<< "$case"
  timeout 60 "$meshlm" train $cmdline "${args[@]}" --train.steps 2 > /dev/null 2> "$work/err"
  rc=$?
  refused "refused: $name" "$key"
done

# 6. A worker (rank 1) or a server (rank 2) killed mid-run ends the job within seconds, with
#    mpirun's line naming the rank.
for victim in 1 2; do
  "$meshlm" train --nproc 3 --sync ps "${args[@]}" --train.steps 1000000 > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 200); do grep -q "^step 3/" "$work/out" && break; sleep 0.1; done
  target=$(rank_pids "$pid" "$victim")
  [ -n "$target" ] && kill -9 "$target"
  t0=$SECONDS
  wait_guarded "$pid"
  [ -n "$target" ] && [ "$rc" -ne 0 ] && [ $((SECONDS - t0)) -le 20 ] && grep -q "rank $victim .*exited on signal 9" "$work/err"
  check "rank $victim killed: the job ends" $? "exit $rc after $((SECONDS - t0)) s: $(cat "$work/err")"
done

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
