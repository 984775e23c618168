#!/usr/bin/env bash
# Ranks that train apart and merge parameters (parallel.sync = local_sgd, diloco, gossip;
# docs/parallel.md, "Decentralized training"): a run stopped and resumed ends with the bytes of
# the uninterrupted run (its EMA model too), for every method and for top-k and PowerSGD
# compression; metrics.jsonl counts the bytes of
# each merge and nothing between them; the EMA model evaluates; the combinations that cannot
# work exit 2 with one line naming the key.
# Usage: decentralized.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$here/checks.sh"
# 445952 parameters; a constant schedule, so that 4 steps resumed to 10 follow the 10-step run's.
args=(--config "$src/configs/tiny.toml" --model.n_layer 2 --train.micro_batch 5 --train.block_size 32
      --train.eval_tokens 512 --train.eval_every 5 --train.warmup_steps 2 --train.decay constant
      --train.threads 1 --data "$src/docs/CLI.md")
params=445952
train() {  # train NAME ARGS...: exit code in $rc, stderr in $work/err
  local name=$1
  shift
  timeout 120 "$meshlm" train "$@" "${args[@]}" > "$work/out_$name" 2> "$work/err"
  rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err")"
}

# 1. Resume is bit-exact, from a checkpoint between merges (step 4, H = 3): every rank's
#    parameters and optimizer state, diloco's global model and momentum, the EMA.
for method in "local_sgd --parallel.average_optimizer_state true" "diloco --merge ema" "gossip --gossip-graph exponential"; do
  name=${method%% *}
  train "$name-whole" --nproc 2 --sync $method --sync-every 3 --train.steps 10 --out "$work/$name-whole"
  train "$name-part" --nproc 2 --sync $method --sync-every 3 --train.steps 4 --out "$work/$name-part"
  train "$name-resumed" --resume "$work/$name-part" --nproc 2 --sync $method --sync-every 3 --train.steps 10
  cmp -s "$work/$name-whole/model.safetensors" "$work/$name-part/model.safetensors"
  check "$name: stopped at step 4 and resumed to 10, the final model is the uninterrupted run's" $? "models differ"
done
# Gradient compression: each rank's residual and PowerSGD's warm-started Q are in the checkpoint.
for method in topk powersgd; do
  train "$method-whole" --nproc 2 --compress $method --train.steps 10 --out "$work/$method-whole"
  train "$method-part" --nproc 2 --compress $method --train.steps 4 --out "$work/$method-part"
  train "$method-resumed" --resume "$work/$method-part" --nproc 2 --compress $method --train.steps 10
  cmp -s "$work/$method-whole/model.safetensors" "$work/$method-part/model.safetensors"
  check "--compress $method: stopped at step 4 and resumed to 10, the final model is the uninterrupted run's" $? \
    "models differ"
done
# Turning compression on at a resume starts its residual from zero.
train plain --nproc 2 --train.steps 4 --out "$work/plain"
train plain-resumed --resume "$work/plain" --nproc 2 --compress int8 --train.steps 6
check "a checkpoint without compression resumes with --compress int8" "$rc" "exit code $rc"
cmp -s "$work/diloco-whole/ema/model.safetensors" "$work/diloco-part/ema/model.safetensors"
check "diloco: the resumed run's EMA model is the uninterrupted run's" $? "EMA models differ"
# Gossip never agrees exactly: its evaluations report a consensus distance above 0.
grep -q '"consensus_distance": [1-9]' "$work/gossip-whole/metrics.jsonl"
check "gossip: evaluations report a positive consensus distance" $? "$(grep val_loss "$work/gossip-whole/metrics.jsonl")"

# 2. Bytes: local_sgd's merge of 2 ranks is a ring all-reduce of the parameters (2 (N-1)/N x 4
#    bytes each), and nothing is sent between merges; the compression is H since the start.
merge_bytes=$((params * 4))
python3 - "$work/local_sgd-whole/metrics.jsonl" "$merge_bytes" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
want = int(sys.argv[2])  # 4 bytes per parameter: parameters plus Adam's two moments make 3 of these
for s in steps:
    sent = s["sync_bytes"]
    expected = 3 * want if s["step"] % 3 == 0 else 0
    assert sent == expected, f"step {s['step']} sent {sent}, expected {expected}"
# After 9 steps: 9 steps of gradients against 3 merges of 3 buffers each.
assert abs(steps[8]["compression"] - 9 / (3 * 3)) < 1e-3, steps[8]
PY
check "local_sgd with averaged optimizer state: a merge sends parameters and 2 moments, other steps nothing" $? "see above"
train diloco-bytes --nproc 2 --sync diloco --sync-every 4 --train.steps 8
python3 - "$work/out_diloco-bytes" <<'PY'
import sys
out = open(sys.argv[1]).read()
assert "2 merges; rank 0 sent " in out, out
PY
check "diloco: the summary counts the merges" $? "$(tail -3 "$work/out_diloco-bytes")"

# 3. The EMA model is a model directory of its own.
timeout 60 "$meshlm" eval --checkpoint "$work/diloco-whole/ema" --data "$src/docs/CLI.md" --tokens 512 > "$work/eval" 2> "$work/err"
check "the EMA model evaluates" $? "$(cat "$work/err")"

# 4. What cannot work is refused.
for case in "parallel.sync_every|--sync local_sgd --sync-every 0" \
            "parallel.merge|--sync gossip --merge ema" \
            "parallel.merge|--merge ema" \
            "parallel.zero|--nproc 2 --sync diloco --zero 1" \
            "train.precision|--sync local_sgd --precision fp16" \
            "parallel.outer_momentum|--sync diloco --outer-momentum 1" \
            "parallel.merge_decay|--sync diloco --merge ema --merge-decay 1.5"; do
  key=${case%%|*}
  train refused ${case#*|} --train.steps 2
  refused "refused: ${case#*|}" "$key"
done
train resumed-as-allreduce --resume "$work/local_sgd-part" --nproc 2 --train.steps 10
refused "a local_sgd checkpoint resumed as all-reduce" "parallel.sync"
train resumed-on-3 --resume "$work/diloco-part" --nproc 3 --sync diloco --train.steps 10
refused "a 2-rank diloco checkpoint resumed on 3 ranks" "parallel.dp"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
