#!/usr/bin/env bash
# model.dropout from the command line: a probability outside [0, 1) and dropout on the GPU are
# one-line config errors (exit 2); on the CPU a run trains with it, records it in config.json,
# resumes with it, and --init-from accepts --model.dropout. Usage: dropout.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
printf 'In the beginning God created the heaven and the earth. And the earth was without form. %.0s' $(seq 300) > "$work/text.txt"
small="--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 --train.micro_batch 2 --train.steps 4 --train.eval_tokens 64"

expect_error() {  # NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  "$meshlm" "$@" > "$work/stdout" 2> "$work/stderr"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$name: exit code $rc, expected 2 ($(cat "$work/stderr"))"
  [ "$(wc -l < "$work/stderr")" -eq 1 ] || fail "$name: stderr is not one line: $(cat "$work/stderr")"
  grep -qE "$pattern" "$work/stderr" || fail "$name: message lacks /$pattern/: $(cat "$work/stderr")"
  echo "ok   $name: $(cat "$work/stderr")"
}

expect_error probability_one 'model.dropout must be in \[0, 1\)' train --data "$work/text.txt" $small --model.dropout 1 --out "$work/a"
expect_error negative 'model.dropout' train --data "$work/text.txt" $small --model.dropout -0.5 --out "$work/b"
expect_error on_the_gpu 'model.dropout > 0 runs on the CPU only' train --data "$work/text.txt" $small --model.dropout 0.1 --device cuda --out "$work/c"

"$meshlm" train --data "$work/text.txt" $small --model.dropout 0.2 --out "$work/run" > "$work/train.log" 2>&1 ||
  fail "training with dropout: $(tail -3 "$work/train.log")"
model=$(ls -d "$work"/run/checkpoints/*/ | head -1)
[ -n "$model" ] || fail "no checkpoint written"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['resid_pdrop']==j['attn_pdrop']==j['embd_pdrop']==0.2, j" \
  "$model/config.json" || fail "config.json does not record the dropout"
echo "ok   training with dropout 0.2"

"$meshlm" train --data "$work/text.txt" --resume "$work/run" --train.steps 4 > "$work/resume.log" 2>&1 || fail "--resume of a run with dropout: $(tail -3 "$work/resume.log")"
expect_error resume_other_dropout "model.dropout" train --data "$work/text.txt" --resume "$work/run" --model.dropout 0.3
echo "ok   --resume keeps the dropout"

"$meshlm" train --data "$work/text.txt" --init-from "$model" --model.dropout 0.1 --train.micro_batch 2 --train.steps 2 \
  --train.eval_tokens 64 --out "$work/tuned" > "$work/tune.log" 2>&1 || fail "--init-from with --model.dropout: $(tail -3 "$work/tune.log")"
echo "ok   --init-from accepts --model.dropout"
