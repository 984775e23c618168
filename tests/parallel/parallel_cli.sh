#!/usr/bin/env bash
# Data- and tensor-parallel runs from the command line: `--nproc N`, mpirun with --dp/--tp,
# resuming a parallel run in one process, eval and generate on a tensor-parallel group, and the
# launch mistakes (each must end every rank with exit code 2 and one "error:" line, within a
# time limit: nobody may hang).
# Usage: parallel_cli.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
small=(--config "$src/configs/tiny.toml" --model.n_layer 2 --train.micro_batch 4
       --train.block_size 32 --train.eval_tokens 512 --train.eval_every 0 --train.warmup_steps 1)
data=(--data "$src/docs/CLI.md")

# 1. --nproc 2 starts mpirun; rank 0 alone prints and writes.
timeout 120 "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" --train.steps 4 --zero 2 --out "$work/run" > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "--nproc 2: exit code $rc: $(cat "$work/err")"
grep -q "mesh: 2 ranks = dp 2 x pp 1 x tp 1" "$work/out" || fail "--nproc 2: no mesh line in: $(cat "$work/out")"
grep -q "memory per rank" "$work/out" || fail "--nproc 2: no memory line"
[ "$(grep -c '^step 4/4' "$work/out")" -eq 1 ] || fail "--nproc 2: step 4 printed $(grep -c '^step 4/4' "$work/out") times"
[ -f "$work/run/model.safetensors" ] && [ -f "$work/run/checkpoints/latest" ] || fail "--nproc 2: no final model or checkpoint"
[ "$(grep -c '"step"' "$work/run/metrics.jsonl")" -ge 4 ] || fail "--nproc 2: metrics.jsonl lacks steps"

# 2. One process resumes the two-rank run (ZeRO-2 shards were gathered into the checkpoint).
timeout 120 "$meshlm" train --resume "$work/run" "${data[@]}" --train.steps 6 > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "resume in one process: exit code $rc: $(cat "$work/err")"
grep -q "^step 6/6" "$work/out" || fail "resume in one process: did not reach step 6"

# 3. Tensor parallel: train with --tp 2; eval and generate give one process's results.
timeout 120 "$meshlm" train --nproc 2 --tp 2 "${small[@]}" "${data[@]}" --train.steps 3 --out "$work/tp" > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "--nproc 2 --tp 2: exit code $rc: $(cat "$work/err")"
grep -q "dp 1 x pp 1 x tp 2" "$work/out" || fail "--tp 2: no mesh line in: $(cat "$work/out")"
for cmd in "eval --data $src/docs/CLI.md --tokens 512" "generate --prompt The --max-new-tokens 20 --seed 4"; do
  timeout 60 "$meshlm" $cmd --checkpoint "$work/tp" > "$work/one" 2> /dev/null
  timeout 60 "$meshlm" $cmd --checkpoint "$work/tp" --nproc 2 > "$work/two" 2> "$work/err"
  rc=$?
  [ $rc -eq 0 ] || fail "$cmd --nproc 2: exit code $rc: $(cat "$work/err")"
  # eval's line ends with its run time; compare what precedes it.
  if [ "$(sed 's/ | [0-9.]* s$//' "$work/one")" != "$(sed 's/ | [0-9.]* s$//' "$work/two")" ]; then
    fail "$cmd: tp 2 printed '$(cat "$work/two")', one process '$(cat "$work/one")'"
  fi
done

# 4. Pipeline: two stages train and print which ranks hold which blocks, with bubble figures.
timeout 120 "$meshlm" train --nproc 2 --pp 2 "${small[@]}" "${data[@]}" --train.steps 3 --train.grad_accum 2 > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "--nproc 2 --pp 2: exit code $rc: $(cat "$work/err")"
grep -q "rank 1 (dp 0, pp 1, tp 0): blocks 1-1 + head" "$work/out" || fail "--pp 2: no stage layout in: $(cat "$work/out")"
grep -q "^step 3/3 .*| idle [0-9]*% [0-9]*%" "$work/out" || fail "--pp 2: no idle figures in: $(grep '^step' "$work/out")"

# 5. ZeRO-3 with bf16 products and bf16 gradients on the wire; fp16 shows its loss scale.
timeout 120 "$meshlm" train --nproc 2 --zero 3 --precision bf16 --grad-reduce-dtype bf16 "${small[@]}" "${data[@]}" --train.steps 3 --out "$work/z3" > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "--zero 3: exit code $rc: $(cat "$work/err")"
grep -q "parameters .* (shard; layers gathered while in use)" "$work/out" || fail "--zero 3: no shard memory line in: $(cat "$work/out")"
grep -q "^ZeRO-3: gathered parameters peak at" "$work/out" || fail "--zero 3: no gathered peak line in: $(cat "$work/out")"
grep -q "bf16, " "$work/out" || fail "--precision bf16 not reported in: $(head -1 "$work/out")"
[ -f "$work/z3/model.safetensors" ] || fail "--zero 3: no final model"
timeout 120 "$meshlm" train --precision fp16 --train.loss_scale 1099511627776 "${small[@]}" "${data[@]}" --train.steps 2 > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "--precision fp16: exit code $rc: $(cat "$work/err")"
grep -q "^step 1/2 .*| scale 1.09951e+12 | skipped: gradients overflowed" "$work/out" || fail "fp16: no skipped step in: $(grep '^step' "$work/out")"

# 6. Launch mistakes.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  timeout 90 "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  local errors
  errors=$(grep -c '^error: ' "$work/err")
  if [ $rc -ne 2 ]; then fail "$name: exit code $rc, expected 2 ($(head -c 600 "$work/err"))"
  elif [ "$errors" -ne 1 ]; then fail "$name: $errors error lines, expected 1: $(cat "$work/err")"
  elif ! grep '^error: ' "$work/err" | grep -qiE "$pattern"; then fail "$name: message does not mention /$pattern/: $(grep '^error: ' "$work/err")"
  fi
}
mpirun=(mpirun -np 2 --oversubscribe --bind-to none)
expect_error "--dp 3 under 2 ranks" "dp.*3.*2 processes" "${mpirun[@]}" "$meshlm" train "${small[@]}" "${data[@]}" --train.steps 2 --dp 3
expect_error "micro_batch < ranks" "micro_batch.*3.*ranks" "$meshlm" train --nproc 3 "${small[@]}" "${data[@]}" --train.steps 2 --train.micro_batch 2
expect_error "missing data" "not found|no such|missing" "$meshlm" train --nproc 2 "${small[@]}" --data "$work/missing.txt"
expect_error "bad ZeRO stage" "parallel.zero" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" --zero 4
expect_error "bad precision" "train.precision.*fp8" "$meshlm" train "${small[@]}" "${data[@]}" --precision fp8
expect_error "bad gradient dtype" "parallel.grad_reduce_dtype" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" --grad-reduce-dtype f16
expect_error "--nproc under mpirun" "nproc" "${mpirun[@]}" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}"
mpirun3=(mpirun -np 3 --oversubscribe --bind-to none)
expect_error "heads not divisible by tp" "n_head.*4.*parallel.tp.*3" "${mpirun3[@]}" "$meshlm" train "${small[@]}" "${data[@]}" --tp 3
expect_error "dp x tp != ranks" "tp 2.*3 processes" "${mpirun3[@]}" "$meshlm" train "${small[@]}" "${data[@]}" --tp 2
expect_error "more stages than layers" "parallel.pp.*3.*n_layer.*2" "${mpirun3[@]}" "$meshlm" train "${small[@]}" "${data[@]}" --pp 3 --train.grad_accum 3
expect_error "pp_layers not summing to n_layer" "pp_layers" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" --pp 2 --train.grad_accum 2 --pp-layers 1,2
expect_error "grad_accum < pp under 1F1B" "grad_accum.*1.*parallel.pp.*2" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" --pp 2
expect_error "eval --tp on too few ranks" "tp 2 needs 2 processes" "$meshlm" eval --checkpoint "$work/tp" --data "$src/docs/CLI.md" --tp 2

[ $failures -eq 0 ] && echo "all parallel CLI checks passed"
exit $((failures > 0))
