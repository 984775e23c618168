#!/usr/bin/env bash
# Convergence on real text (the King James Bible, scripts/kjv-text.sh) of the methods that
# send fewer bytes, against the all-reduce with the same model, data, optimizer and tokens:
# 2 ranks, the tiny config, STEPS steps of 8 sequences of 64 tokens (AdamW, lr 3e-3). Each must end
# with a validation loss at most 3% above the all-reduce's:
#   local_sgd and diloco (outer lr 0.3, momentum 0.7), merging every 10 steps: 10x fewer bytes;
#   powersgd rank 4 and int8 with error feedback;
#   top-k 1% with error feedback, with SGD (momentum 0.9, lr 0.1) against SGD's all-reduce.
# (Top-k with AdamW and DiLoCo with the published outer settings (0.7, 0.9) at H = 10 train
# worse, by 33% and 10% in docs/parallel.md's measurement: they are reported there, not held here.)
# Usage: decentralized_convergence.sh MESHLM_BINARY SOURCE_DIR [STEPS=150]
set -u
meshlm=$1
src=$2
steps=${3:-150}
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$here/checks.sh"
bash "$src/scripts/kjv-text.sh" "$work/kjv.txt" || { echo "FAIL scripts/kjv-text.sh"; exit 1; }
args=(--config "$src/configs/tiny.toml" --train.micro_batch 8 --train.block_size 64 --train.steps "$steps"
      --train.warmup_steps 10 --train.eval_every 0 --train.eval_tokens 8192 --train.threads 1
      --data "$work/kjv.txt" --nproc 2)
train() {  # train NAME ARGS...: the run in $work/NAME
  local name=$1
  shift
  timeout 200 "$meshlm" train "$@" "${args[@]}" --out "$work/$name" > "$work/out_$name" 2> "$work/err_$name"
  local rc=$?
  [ "$rc" -eq 0 ] || echo "  $name: exit code $rc: $(cat "$work/err_$name")"
}
# within NAME REFERENCE MIN_COMPRESSION: the last validation loss at most 3% above the
# reference's, and the bytes sent at least MIN_COMPRESSION times fewer than an f32 all-reduce's.
within() {
  local verdict status
  verdict=$(python3 - "$work/$1/metrics.jsonl" "$work/$2/metrics.jsonl" "$3" <<'PY'
import json, sys
def load(path):
    rows = [json.loads(l) for l in open(path)]
    return [r for r in rows if "loss" in r], [r["val_loss"] for r in rows if "val_loss" in r][-1]
steps, val = load(sys.argv[1])
_, ref = load(sys.argv[2])
ratio = steps[-1].get("compression", 1)
print(f"val loss {val:.4f} against {ref:.4f} ({100 * (val / ref - 1):+.1f}%), {ratio:.3g}x fewer bytes")
sys.exit(0 if val <= 1.03 * ref and ratio >= float(sys.argv[3]) else 1)
PY
)
  status=$?
  check "$1: $verdict" "$status" "more than 3% above $2, or too few bytes saved"
}

train allreduce
train local_sgd --sync local_sgd --sync-every 10
within local_sgd allreduce 10
train diloco --sync diloco --sync-every 10 --outer-lr 0.3 --outer-momentum 0.7
within diloco allreduce 10
train powersgd --compress powersgd --compress-rank 4
within powersgd allreduce 10
train int8 --compress int8
within int8 allreduce 3.9
sgd=(--optim.name sgd --optim.momentum 0.9 --train.lr 0.1)
train sgd "${sgd[@]}"
train sgd_topk "${sgd[@]}" --compress topk --compress-ratio 0.01
within sgd_topk sgd 40

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
