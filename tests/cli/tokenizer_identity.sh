#!/usr/bin/env bash
# Tokenizer identity: data prepared with one bpe tokenizer cannot be trained on (--init-from,
# --resume) or evaluated with a model of another: exit 2 and one line naming both tokenizers,
# unless --allow-tokenizer-mismatch. `prepare --tokenizer-from` encodes new text with the
# model's own tokenizer (the same ids as the original), and then everything agrees. Old
# directories (manifest named tokenizer.json, no fingerprints) still load and are checked.
# Usage: tokenizer_identity.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"
fingerprint() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokenizer_fingerprint"])' "$1/meta.json"; }

for i in $(seq 600); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/a.txt"
for i in $(seq 600); do echo "Call me Ishmael $i. Some years ago, never mind how long precisely, I went to sea."; done > "$work/b.txt"

"$meshlm" prepare --input "$work/a.txt" --out "$work/da" --tokenizer bpe --vocab-size 300 > "$work/out" 2>&1
check "prepare a" $? "$(cat "$work/out")"
"$meshlm" prepare --input "$work/b.txt" --out "$work/db" --tokenizer bpe --vocab-size 300 > "$work/out" 2>&1
check "prepare b" $? "$(cat "$work/out")"
fa=$(fingerprint "$work/da")
fb=$(fingerprint "$work/db")
check "two tokenizers, two fingerprints" $([ -n "$fa" ] && [ "$fa" != "$fb" ]; echo $?) "$fa vs $fb"

run_opts=(--train.micro_batch 4 --train.eval_every 0 --train.eval_tokens 256 --train.threads 1)
small=(--model.vocab_size 300 --model.n_layer 1 --model.n_embd 32 --model.n_head 2 --model.n_positions 32 "${run_opts[@]}")
"$meshlm" train --data "$work/da" "${small[@]}" --train.steps 4 --out "$work/run" > "$work/out" 2>&1
check "train on a" $? "$(tail -3 "$work/out")"
state="$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")/trainer_state.json"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["tokenizer"]["fingerprint"] == sys.argv[2]' "$state" "$fa"
check "checkpoint records the fingerprint" $? "$(cat "$state" | head -40)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bos_token_id"] is None and d["eos_token_id"] == 1, d' "$work/run/config.json"
check "config.json names </s> as eos, no bos" $? "$(grep token_id "$work/run/config.json")"
check "model directory keeps Hugging Face's tokenizer.json free" \
  $([ -f "$work/run/meshlm_tokenizer.json" ] && [ -f "$work/run/tokenizer.model" ] && [ ! -e "$work/run/tokenizer.json" ]; echo $?) \
  "$(ls "$work/run")"

# expect_refusal NAME COMMAND...: exit 2, one line on stderr naming both fingerprints.
expect_refusal() {
  local name=$1; shift
  "$@" > "$work/out" 2> "$work/err"; local rc=$?
  check "$name refused (exit 2)" $([ $rc -eq 2 ]; echo $?) "exit $rc: $(cat "$work/err")"
  check "$name names both tokenizers in one line" \
    $([ "$(wc -l < "$work/err")" -eq 1 ] && grep -q "fingerprint $fa" "$work/err" && grep -q "fingerprint $fb" "$work/err" \
      && grep -q -- "--allow-tokenizer-mismatch" "$work/err"; echo $?) "$(cat "$work/err")"
}
expect_refusal "init-from" "$meshlm" train --data "$work/db" --init-from "$work/run" "${run_opts[@]}" --train.steps 2
expect_refusal "resume" "$meshlm" train --data "$work/db" --resume "$work/run" --train.steps 6
expect_refusal "eval" "$meshlm" eval --checkpoint "$work/run" --data "$work/db" --tokens 64 --batch 2

# --tokenizer-from: the model's tokenizer, as it is (from a run, a checkpoint or a data dir).
"$meshlm" prepare --input "$work/b.txt" --out "$work/db2" --tokenizer-from "$work/run" > "$work/out" 2>&1
check "prepare --tokenizer-from RUN" $? "$(cat "$work/out")"
check "same fingerprint as the model's" $([ "$(fingerprint "$work/db2")" = "$fa" ]; echo $?) "$(fingerprint "$work/db2") vs $fa"
"$meshlm" prepare --input "$work/a.txt" --out "$work/da2" --tokenizer-from "$work/da" > "$work/out" 2>&1
check "prepare --tokenizer-from DATA" $? "$(cat "$work/out")"
cmp -s "$work/da/train.bin" "$work/da2/train.bin" && cmp -s "$work/da/val.bin" "$work/da2/val.bin"
check "same text, same ids as the original tokenizer" $? "token shards differ"
ckpt="$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")"
"$meshlm" prepare --input "$work/b.txt" --out "$work/db3" --tokenizer-from "$ckpt" > "$work/out" 2>&1
check "prepare --tokenizer-from CHECKPOINT" $([ $? -eq 0 ] && cmp -s "$work/db2/train.bin" "$work/db3/train.bin"; echo $?) "$(cat "$work/out")"
"$meshlm" prepare --input "$work/b.txt" --out "$work/dx" --tokenizer-from "$work" > "$work/out" 2>&1
check "prepare --tokenizer-from a directory without one: exit 2" $([ $? -eq 2 ] && grep -q "holds no tokenizer" "$work/out"; echo $?) "$(cat "$work/out")"
"$meshlm" prepare --input "$work/b.txt" --out "$work/dx" --tokenizer-from "$work/da" --tokenizer gpt2 > "$work/out" 2>&1
check "--tokenizer-from with --tokenizer is refused" $([ $? -eq 2 ] && [ ! -e "$work/dx" ]; echo $?) "$(cat "$work/out")"

"$meshlm" train --data "$work/db2" --init-from "$work/run" "${run_opts[@]}" --train.steps 2 --out "$work/ft" > "$work/out" 2>&1
check "init-from with --tokenizer-from data" $? "$(tail -3 "$work/out")"
"$meshlm" eval --checkpoint "$work/ft" --data "$work/db2" --tokens 64 --batch 2 > "$work/out" 2>&1
check "eval with --tokenizer-from data" $? "$(cat "$work/out")"
"$meshlm" train --data "$work/da" --resume "$work/run" --train.steps 6 > "$work/out" 2>&1
check "resume with the same tokenizer" $? "$(tail -3 "$work/out")"

# --allow-tokenizer-mismatch lets it through.
"$meshlm" train --data "$work/db" --init-from "$work/run" "${run_opts[@]}" --train.steps 2 --allow-tokenizer-mismatch > "$work/out" 2>&1
check "init-from --allow-tokenizer-mismatch" $? "$(tail -3 "$work/out")"
"$meshlm" eval --checkpoint "$work/run" --data "$work/db" --tokens 64 --batch 2 --allow-tokenizer-mismatch > "$work/out" 2>&1
check "eval --allow-tokenizer-mismatch" $? "$(cat "$work/out")"

# Directories from before fingerprints: the manifest was tokenizer.json; meta.json and
# trainer_state.json had no fingerprint. They load, and the check computes it from the files.
cp -r "$work/db" "$work/old_db"
mv "$work/old_db/meshlm_tokenizer.json" "$work/old_db/tokenizer.json"
python3 - "$work/old_db" <<'PY'
import json, sys
d = sys.argv[1]
for name, drop in (("meta.json", "tokenizer_fingerprint"), ("tokenizer.json", "fingerprint")):
    j = json.load(open(f"{d}/{name}")); j.pop(drop); json.dump(j, open(f"{d}/{name}", "w"))
PY
expect_refusal "old data directory" "$meshlm" eval --checkpoint "$work/run" --data "$work/old_db" --tokens 64 --batch 2
"$meshlm" eval --checkpoint "$work/run" --data "$work/old_db" --tokens 64 --batch 2 --allow-tokenizer-mismatch > "$work/out" 2>&1
check "old data directory loads" $? "$(cat "$work/out")"

# A model directory without a tokenizer (as Hugging Face's hub may give): only the vocabulary
# sizes are compared.
mkdir "$work/bare"
cp "$work/run/config.json" "$work/run/model.safetensors" "$work/bare/"
"$meshlm" eval --checkpoint "$work/bare" --data "$work/db" --tokens 64 --batch 2 > "$work/out" 2>&1
check "bare model directory: no tokenizer to compare" $? "$(cat "$work/out")"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
