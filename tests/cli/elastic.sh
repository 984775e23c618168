#!/usr/bin/env bash
# Elastic restart (`train --nproc 4 --min-nproc 2 --hostfile FILE --max-restarts N`): a 4-rank
# data-parallel run whose hostfile drops to 2 slots while a rank is killed resumes on 2 ranks
# (dp 2, micro_batch halved, grad_accum doubled: the global batch kept), grows back to 4 when
# the hostfile offers 4 again, and ends with the loss curve and the weights of an uninterrupted
# 4-rank run (relative 1e-5: only the float summation order differs). Also the refusals of
# --min-nproc, and resume across a split of the same global batch.
# Usage: elastic.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# A hostfile of 4 slots on a 2-core machine hides the oversubscription from Open MPI, whose
# waiting ranks would then spin rather than yield (several times slower here).
export OMPI_MCA_mpi_yield_when_idle=1

for i in $(seq 400); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
args=(--data "$work/text.txt" --model.n_layer 2 --model.n_embd 64 --model.n_head 2 --model.n_positions 64
      --train.micro_batch 8 --train.save_every 10 --train.eval_every 0 --train.threads 1 --train.steps 200)
hostfile="$work/hostfile"
offer() {  # offer SLOTS: the hostfile now offers SLOTS ranks (replaced atomically, as a scheduler would)
  echo "localhost slots=$1" > "$hostfile.new" && mv "$hostfile.new" "$hostfile"
}

# Refusals: one error line, exit 2.
"$meshlm" train "${args[@]}" --out "$work/bad" --nproc 2 --min-nproc 4 --max-restarts 1 --hostfile "$hostfile" \
  > /dev/null 2> "$work/err"; rc=$?
refused "--min-nproc above --nproc" "--min-nproc 4 is more than --nproc 2"
"$meshlm" train "${args[@]}" --out "$work/bad" --nproc 4 --min-nproc 2 --hostfile "$hostfile" > /dev/null 2> "$work/err"; rc=$?
refused "--min-nproc without --max-restarts" "--min-nproc 2 needs --max-restarts"
"$meshlm" train "${args[@]}" --out "$work/bad" --nproc 4 --min-nproc 2 --max-restarts 1 > /dev/null 2> "$work/err"; rc=$?
refused "--min-nproc without --hostfile" "needs --hostfile"
"$meshlm" train "${args[@]}" --out "$work/bad" --hostfile "$hostfile" > /dev/null 2> "$work/err"; rc=$?
refused "--hostfile without --nproc" "--hostfile goes to the mpirun that --nproc starts"

"$meshlm" train "${args[@]}" --out "$work/bad" --nproc 4 --min-nproc 2 --max-restarts 1 --hostfile "$work/none" \
  > /dev/null 2> "$work/err"; rc=$?
refused "an unreadable hostfile" "--hostfile: cannot read .*/none"
# Fewer slots than --min-nproc: the supervisor waits (a restart each time), then gives up.
offer 1
"$meshlm" train "${args[@]}" --out "$work/few" --nproc 4 --min-nproc 2 --max-restarts 1 --restart-backoff 0.05 \
  --hostfile "$hostfile" > "$work/few.log" 2>&1; rc=$?
[ "$rc" -ne 0 ] && grep -q "^restart 1 of 1: waiting 0.05 s: .* offers 1 slots, fewer than --min-nproc 2" "$work/few.log" &&
  grep -q "^error: .*fewer than --min-nproc 2.*giving up after 1 restart" "$work/few.log" &&
  [ "$(grep -c '"event":"wait"' "$work/few/events.jsonl")" -eq 1 ] && ! grep -q '"start"' "$work/few/events.jsonl" &&
  grep -q '"outcome":"gave up"' "$work/few/events.jsonl"
check "1 slot, --min-nproc 2: waits once, then gives up without a start" $? "exit $rc: $(cat "$work/few.log")"

# The reference: 4 ranks, uninterrupted.
"$meshlm" train "${args[@]}" --nproc 4 --out "$work/ref" > "$work/ref.log" 2>&1
check "uninterrupted 4-rank run" $? "$(tail -3 "$work/ref.log")"

# The elastic run: after its checkpoint of step 20, the hostfile drops to 2 slots and rank 1 is
# killed; once the 2-rank job has saved a checkpoint of its own, the hostfile offers 4 again.
offer 4
run="$work/run"
"$meshlm" train "${args[@]}" --nproc 4 --min-nproc 2 --hostfile "$hostfile" --max-restarts 2 --restart-backoff 0.05 \
  --out "$run" > "$work/run.log" 2>&1 &
supervisor=$!
python3 - "$run" "$hostfile" > "$work/faults" 2>&1 <<'PY'
import json, os, signal, sys, time
run, hostfile = sys.argv[1], sys.argv[2]
def wait(condition, what, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value: return value
        time.sleep(0.005)
    sys.exit(f"timed out waiting for {what}")
def latest():
    try: return int(open(f"{run}/checkpoints/latest").read().strip()[5:])
    except (OSError, ValueError): return -1
def beat(rank):
    try: return json.load(open(f"{run}/.heartbeat/rank_{rank}"))
    except (OSError, ValueError): return None
def starts():
    try: return [e for e in map(json.loads, open(f"{run}/events.jsonl")) if e["event"] == "start"]
    except (OSError, ValueError): return []
def offer(slots):
    with open(hostfile + ".new", "w") as f: f.write(f"localhost slots={slots}\n")
    os.rename(hostfile + ".new", hostfile)
wait(lambda: latest() >= 20 and all(beat(r) for r in range(4)), "4 ranks past step 20")
offer(2)
pid = beat(1)["pid"]
os.kill(pid, signal.SIGKILL)
print(f"at checkpoint {latest()}: the hostfile offers 2 slots; killed rank 1 (pid {pid})", flush=True)
small = wait(lambda: next((s for s in starts() if s.get("nproc") == 2), None), "a start on 2 ranks")
wait(lambda: latest() >= (small["resume_step"] or 0) + 20, "the 2-rank job to save two checkpoints")
offer(4)
print(f"at checkpoint {latest()}: the hostfile offers 4 slots again", flush=True)
PY
check "faults injected" $? "$(cat "$work/faults")"
sed 's/^/     /' "$work/faults"
wait "$supervisor"
rc=$?
check "the elastic run finishes" "$rc" "exit $rc: $(grep -v '^step' "$work/run.log" | tail -5)"

# events.jsonl: starts on 4, 2 and 4 ranks, the 2-rank one with the batch split 4 x 2; a resize
# each way; the stop for growing is not a failure.
python3 - "$run/events.jsonl" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
starts = [e for e in events if e["event"] == "start"]
resizes = [e for e in events if e["event"] == "resize"]
assert [s["nproc"] for s in starts] == [4, 2, 4], starts
assert [(s["dp"], s["micro_batch"], s["grad_accum"]) for s in starts] == [(4, 8, 1), (2, 4, 2), (4, 8, 1)], starts
assert [(r["from"], r["to"], r["capacity"]) for r in resizes] == [(4, 2, 2), (2, 4, 4)], resizes
assert all(r["reason"] for r in resizes), resizes
assert starts[1]["resume_step"] >= 20 and starts[2]["resume_step"] > starts[1]["resume_step"], starts
exits = [e for e in events if e["event"] == "exit"]
assert exits[1]["cause"] == "resize" and exits[1]["exit_code"] == 143, exits
assert sum(e["event"] == "restart" for e in events) == 1, events
assert events[-1]["event"] == "end" and events[-1]["outcome"] == "finished", events[-1]
PY
check "events.jsonl: starts on 4, 2, 4 ranks and a resize each way" $? "$(cat "$run/events.jsonl")"
grep -q "^resize: 4 -> 2 processes .*dp 2, micro_batch 4 x grad_accum 2 (global batch 8 kept)" "$work/run.log" &&
  grep -q "^resize: 2 -> 4 processes" "$work/run.log" &&
  grep -q "^mesh: 2 ranks = dp 2 " "$work/run.log" && grep -q "batch 4 x 64 tokens x 2 accum" "$work/run.log"
check "the console shows each resize and the 2-rank job's dp 2, batch 4 x 2 accum" $? \
  "$(grep -E '^(resize|mesh|meshlm train)' "$work/run.log")"

# The loss of every step and the final weights, against the uninterrupted run.
python3 - "$work/ref" "$run" <<'PY'
import array, json, math, struct, sys
def losses(d):
    return {m["step"]: m["loss"] for m in map(json.loads, open(f"{d}/metrics.jsonl")) if "loss" in m and "step" in m}
def weights(d):  # safetensors: 8-byte header length, the JSON header, then the tensors (f32 here)
    raw = open(f"{d}/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    out = {}
    for name, t in json.loads(raw[8:8 + n]).items():
        if name == "__metadata__": continue
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        out[name] = array.array("f", raw[8 + n + a:8 + n + b])
    return out
ref, run = losses(sys.argv[1]), losses(sys.argv[2])
assert sorted(ref) == sorted(run) == list(range(1, 201)), (len(ref), len(run))
worst = max(abs(run[s] - ref[s]) / abs(ref[s]) for s in ref)
wr, wl = weights(sys.argv[1]), weights(sys.argv[2])
assert wr.keys() == wl.keys()
num = sum((x - y) ** 2 for k in wr for x, y in zip(wr[k], wl[k]))
den = sum(x * x for k in wr for x in wr[k])
diff = math.sqrt(num / den)
print(f"     200 steps: largest relative loss difference {worst:.2e}; weights relative L2 {diff:.2e}")
assert worst <= 1e-5 and diff <= 1e-5, (worst, diff)
PY
check "the loss curve and weights of the uninterrupted run (relative 1e-5)" $? "see above"

# Resume accepts another split of the same global batch, and refuses another global batch.
"$meshlm" train "${args[@]}" --resume "$run" --train.steps 310 --train.micro_batch 2 --train.grad_accum 4 \
  > "$work/split.log" 2>&1
check "resume with micro_batch 2 x grad_accum 4 (the same global batch 8)" $? "$(tail -3 "$work/split.log")"
"$meshlm" train "${args[@]}" --resume "$run" --train.steps 320 --train.grad_accum 2 > /dev/null 2> "$work/err"; rc=$?
refused "resume with another global batch" "train.micro_batch x train.grad_accum"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
