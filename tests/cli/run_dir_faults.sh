#!/usr/bin/env bash
# Faults around a run directory: a second training into a directory in use is refused naming
# the first (and changes nothing there), a killed run's stale lock does not block, and a
# killed-and-resumed run's metrics.jsonl holds each step once; metrics on a full disk
# (/dev/full) and a read-only file system (an LD_PRELOAD shim: chmod does not stop root) end
# with one clear error and exit 2; a killed `prepare`'s OUT.tmp.PID is removed by the next
# `prepare` into OUT. Usage: run_dir_faults.sh MESHLM_BINARY READONLY_FS_SHIM
set -u
meshlm=$1
shim=$2
work=$(mktemp -d)
bg=""
trap '[ -n "$bg" ] && kill -9 "$bg" 2> /dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"
last_step() {  # last_step RUN: the step of metrics.jsonl's last training line (0 if none)
  local s
  s=$(grep '"loss"' "$1/metrics.jsonl" 2> /dev/null | tail -1 | sed 's/^{"step": \([0-9]*\),.*/\1/')
  echo "${s:-0}"
}
latest_step() {  # latest_step RUN: the step of the `latest` checkpoint (0 if none)
  local l
  l=$(cat "$1/checkpoints/latest" 2> /dev/null) || { echo 0; return; }
  echo $((10#${l#step_}))
}

for i in $(seq 300); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
small=(--data "$work/text.txt" --model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16
       --train.micro_batch 2 --train.threads 1 --train.eval_every 0)

# 1. A training in progress (stopped, so that it stays in the middle of its run) holds the
#    directory: a second one, plain, --resume or --overwrite, is refused naming it.
run="$work/run"
"$meshlm" train "${small[@]}" --train.steps 1000000 --train.save_every 7 --out "$run" > "$work/first" 2>&1 &
bg=$!
for _ in $(seq 150); do [ "$(latest_step "$run")" -gt 0 ] && [ "$(last_step "$run")" -gt "$(latest_step "$run")" ] && break; sleep 0.1; done
kill -STOP "$bg"
# Stopped after a step past its latest checkpoint: those steps' lines must go on resume.
for _ in $(seq 50); do
  [ "$(last_step "$run")" -gt "$(latest_step "$run")" ] && break
  kill -CONT "$bg"; sleep 0.05; kill -STOP "$bg"
done
saved=$(latest_step "$run")
logged=$(last_step "$run")
check "the first run is past its checkpoint (step $saved, logged $logged)" "$([ "$saved" -gt 0 ] && [ "$logged" -gt "$saved" ]; echo $?)" \
  "$(tail -3 "$work/first")"
cp "$run/metrics.jsonl" "$work/metrics_before"
"$meshlm" train "${small[@]}" --train.steps 4 --out "$run" > /dev/null 2> "$work/err"; rc=$?
refused "second training refused" "run directory .*/run is in use by another training \(pid $bg on host .* since [0-9T:-]*Z\)"
"$meshlm" train "${small[@]}" --train.steps 4 --out "$run" --overwrite > /dev/null 2> "$work/err"; rc=$?
refused "second training with --overwrite refused" "is in use by another training \(pid $bg "
"$meshlm" train --resume "$run" --data "$work/text.txt" --train.steps 1000 > /dev/null 2> "$work/err"; rc=$?
refused "second training with --resume refused" "is in use by another training \(pid $bg "
cmp -s "$run/metrics.jsonl" "$work/metrics_before" && [ "$(latest_step "$run")" -eq "$saved" ]
check "the refused trainings changed nothing" $? "metrics or checkpoints changed"

# 2. Killed: its lock file stays but does not block; the resumed run's metrics hold each step once.
kill -9 "$bg"; wait "$bg" 2> /dev/null; bg=""
check "the lock file names the dead run" "$(grep -q "^pid [0-9]* on host" "$run/run.lock"; echo $?)" "$(cat "$run/run.lock")"
end=$((logged + 3))
"$meshlm" train --resume "$run" --data "$work/text.txt" --train.steps "$end" > "$work/out" 2> "$work/err"
check "resume after kill -9 (stale lock)" $? "$(cat "$work/err")"
steps=$(grep '"loss"' "$run/metrics.jsonl" | sed 's/^{"step": \([0-9]*\),.*/\1/')
check "metrics.jsonl has steps 1..$end once each" "$([ "$steps" = "$(seq "$end")" ]; echo $?)" \
  "$(echo "$steps" | sort -n | uniq -d | head -5 | tr '\n' ' ')duplicated; $(echo "$steps" | wc -l) lines"
check "metrics.jsonl: every line is a whole object" "$(! grep -qv '^{"step": [0-9]*,.*}$' "$run/metrics.jsonl"; echo $?)" \
  "$(grep -v '^{"step": [0-9]*,.*}$' "$run/metrics.jsonl" | head -2)"

# 3. A resume with nothing to drop keeps metrics.jsonl as it was (each step once still).
"$meshlm" train --resume "$run" --data "$work/text.txt" --train.steps $((end + 2)) > /dev/null 2> "$work/err"
check "second resume" $? "$(cat "$work/err")"
steps=$(grep '"loss"' "$run/metrics.jsonl" | sed 's/^{"step": \([0-9]*\),.*/\1/')
check "metrics.jsonl has steps 1..$((end + 2)) once each" "$([ "$steps" = "$(seq $((end + 2)))" ]; echo $?)" "$(echo $steps)"

# 4. Metrics on a full disk: one clear error, exit 2 (not silently dropped).
mkdir "$work/full"
ln -s /dev/full "$work/full/metrics.jsonl"
"$meshlm" train "${small[@]}" --train.steps 3 --out "$work/full" > /dev/null 2> "$work/err"; rc=$?
refused "metrics on a full disk" "cannot write metrics to .*/full/metrics.jsonl: No space left on device"

# 5. A read-only file system: a new --out, an existing one, and its checkpoints folder.
ro="$work/ro"
mkdir -p "$ro/existing"
LD_PRELOAD="$shim" MESHLM_FAULT_ERRNO=EROFS MESHLM_FAULT_PATH="$ro" "$meshlm" train "${small[@]}" --train.steps 2 --out "$ro/new" \
  > /dev/null 2> "$work/err"; rc=$?
refused "read-only file system: new --out" "cannot create the run directory .*/ro/new: Read-only file system$"
LD_PRELOAD="$shim" MESHLM_FAULT_ERRNO=EROFS MESHLM_FAULT_PATH="$ro" "$meshlm" train "${small[@]}" --train.steps 2 --out "$ro/existing" \
  > /dev/null 2> "$work/err"; rc=$?
refused "read-only file system: existing --out" "cannot create the run directory's lock file .*/ro/existing/run.lock: Read-only file system$"
mkdir "$work/ckro"
LD_PRELOAD="$shim" MESHLM_FAULT_ERRNO=EROFS MESHLM_FAULT_PATH="$work/ckro/checkpoints" "$meshlm" train "${small[@]}" --train.steps 2 \
  --out "$work/ckro" > /dev/null 2> "$work/err"; rc=$?
refused "read-only file system: checkpoints" "cannot write checkpoint step_000002 in .*/ckro: .*Read-only file system$"

# 6. A killed `prepare` leaves OUT.tmp.PID; the next `prepare` into OUT removes it.
for i in $(seq 12); do cat "$work/text.txt"; done > "$work/part.txt"
for i in $(seq 40); do cat "$work/part.txt"; done > "$work/big.txt"
"$meshlm" prepare --input "$work/big.txt" --out "$work/data" --tokenizer byte > /dev/null 2>&1 &
bg=$!
for _ in $(seq 500); do [ -e "$work/data.tmp.$bg/.meshlm_staging" ] && break; sleep 0.01; done
kill -9 "$bg"; wait "$bg" 2> /dev/null
check "a killed prepare left data.tmp.$bg" "$([ -d "$work/data.tmp.$bg" ]; echo $?)" "$(ls "$work")"
bg=""
"$meshlm" prepare --input "$work/text.txt" --out "$work/data" --tokenizer byte > /dev/null 2> "$work/err"
check "prepare after a killed one" $? "$(cat "$work/err")"
check "its leftover is gone" "$([ -z "$(ls -d "$work"/data.tmp.* 2> /dev/null)" ]; echo $?)" "$(ls -d "$work"/data.tmp.* 2> /dev/null)"
check "the new data directory is complete" "$([ -f "$work/data/meta.json" ] && [ ! -e "$work/data/.meshlm_staging" ]; echo $?)" \
  "$(ls -a "$work/data")"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
