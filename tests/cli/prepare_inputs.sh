#!/usr/bin/env bash
# `meshlm prepare`'s input handling from the command line: an --input directory is filtered
# (default *.txt) and the report names what was read and what was left out; a tiny validation
# split gives one "warning:" line; nanoGPT and llm.c token files given to `train --data` are
# refused naming the importer, and an imported llm.c directory trains a step.
# Usage: prepare_inputs.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0
ok() { echo "ok   $1"; passes=$((passes + 1)); }
fail() { echo "FAIL $1"; sed 's/^/    /' "$work/stdout" "$work/stderr"; failures=$((failures + 1)); }

# An npm-style package: a corpus in data/*.txt next to package.json and code. One document per
# line, so the default --val-fraction holds out only a few lines.
mkdir -p "$work/pkg/data" "$work/pkg/lib"
echo '{"name": "corpus", "version": "1.0.0"}' > "$work/pkg/package.json"
echo 'module.exports = require("./data");' > "$work/pkg/lib/index.js"
for i in $(seq 150); do echo "document $i: call me Ishmael, some years ago, never mind how long."; done > "$work/pkg/data/a.txt"
for i in $(seq 150); do echo "address $i: the state of the union is strong and growing."; done > "$work/pkg/data/b.txt"

if "$meshlm" prepare --input "$work/pkg" --out "$work/d_pkg" > "$work/stdout" 2> "$work/stderr"; then
  if grep -q "read 2 files" "$work/stdout" && grep -q "data/a.txt" "$work/stdout" &&
     grep -q "skipped 2 files not matching --glob '\*.txt' (the default for directories):.*package.json" "$work/stdout" &&
     ! grep -q "module.exports" "$work/d_pkg/train.bin" "$work/d_pkg/val.bin"; then ok default_filter_report; else fail default_filter_report; fi
  if [ "$(wc -l < "$work/stderr")" -eq 1 ] && grep -q "^warning: the validation split is tiny.*--val-fraction" "$work/stderr"; then
    ok tiny_val_warning
  else
    fail tiny_val_warning
  fi
else
  fail default_filter_run
fi

"$meshlm" prepare --input "$work/pkg" --glob 'lib/**/*.js' --glob '*.txt' --out "$work/d_js" --val-fraction 0.2 \
  > "$work/stdout" 2> "$work/stderr"
if [ $? -eq 0 ] && grep -q "read 3 files" "$work/stdout" && grep -q "skipped 1 file not matching --glob 'lib/\*\*/\*.js' --glob '\*.txt': .*package.json" "$work/stdout" &&
   [ ! -s "$work/stderr" ]; then ok glob_option; else fail glob_option; fi

"$meshlm" prepare --input "$work/pkg/lib" --out "$work/d_lib" > "$work/stdout" 2> "$work/stderr"
if [ $? -eq 2 ] && [ "$(wc -l < "$work/stderr")" -eq 1 ] && grep -q "^error: no file in .*lib matches --glob '\*.txt'.*index.js" "$work/stderr" &&
   [ ! -e "$work/d_lib" ]; then ok no_matching_file; else fail no_matching_file; fi

# nanoGPT and llm.c token files, and a stand-in for GPT-2's tokenizer files with its 50,257 ids.
python3 - "$work" <<'PY' || { echo "FAIL: python3 could not write the token files"; exit 1; }
import json, os, random, struct, sys
work = sys.argv[1]
rng = random.Random(7)
ids = lambda n: [rng.randrange(50257) for _ in range(n)]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
u16 = lambda t: struct.pack("<%dH" % len(t), *t)
def llmc(t):
    return struct.pack("<256i", *([20240520, 1, len(t)] + [0] * 253)) + u16(t)
train, val = ids(6000), ids(1000)
write(f"{work}/nanogpt/train.bin", u16(train))
write(f"{work}/nanogpt/val.bin", u16(val))
write(f"{work}/llmc/tiny_train_000001.bin", llmc(train[:4000]))
write(f"{work}/llmc/tiny_train_000002.bin", llmc(train[4000:]))
write(f"{work}/llmc/tiny_val_000000.bin", llmc(val))
with open(f"{work}/expected_train.bin", "wb") as f:
    f.write(u16(train))
# GPT-2's byte alphabet for the 256 byte tokens, then filler tokens, <|endoftext|> last.
printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
enc, extra = {}, 256
for b in range(256):
    enc[chr(b) if b in printable else chr(extra)] = b
    extra += b not in printable
letters = "abcdefghijklmnopqrstuvwxyz"
n = 0
while len(enc) < 50256:
    word, v = "", n + 26
    while v:
        word, v = word + letters[v % 26], v // 26
    enc.setdefault(word, len(enc))
    n += 1
enc["<|endoftext|>"] = 50256
os.makedirs(f"{work}/gpt2")
with open(f"{work}/gpt2/encoder.json", "w") as f:
    json.dump(enc, f)
with open(f"{work}/gpt2/vocab.bpe", "w") as f:
    f.write("#version: 0.2\na b\n")
PY

# refused NAME PATTERN ARGS...: `meshlm ARGS` must exit 2 with one "error:" line matching PATTERN.
refused() {
  local name=$1 pattern=$2
  shift 2
  "$meshlm" "$@" > "$work/stdout" 2> "$work/stderr"
  local rc=$?
  if [ "$rc" -eq 2 ] && [ "$(wc -l < "$work/stderr")" -eq 1 ] && grep -q "^error: " "$work/stderr" &&
     grep -qE -- "$pattern" "$work/stderr"; then
    ok "$name: $(cat "$work/stderr")"
  else
    fail "$name (exit $rc)"
  fi
}
tiny="--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 --model.vocab_size 50257 --train.block_size 16 --train.micro_batch 2"
refused nanogpt_as_text "train.bin is not text.*meshlm prepare --from-nanogpt $work/nanogpt --out" \
  train --data "$work/nanogpt/train.bin" $tiny --train.steps 1 --out "$work/run_ng"
refused llmc_as_text "llm.c token file \(magic 20240520, version 1: 4000 uint16 GPT-2 tokens\).*meshlm prepare --from-llmc $work/llmc --out" \
  train --data "$work/llmc/tiny_train_000001.bin" $tiny --train.steps 1 --out "$work/run_lc"
refused llmc_as_prepare_input "--from-llmc" prepare --input "$work/llmc/tiny_val_000000.bin" --out "$work/d_bad"
refused import_with_val_fraction "--val-fraction does not apply to --from-llmc" \
  prepare --from-llmc "$work/llmc" --val-fraction 0.1 --gpt2-dir "$work/gpt2" --out "$work/d_bad"
refused import_with_byte_tokenizer "--tokenizer byte does not apply" \
  prepare --from-nanogpt "$work/nanogpt" --tokenizer byte --gpt2-dir "$work/gpt2" --out "$work/d_bad"
[ -e "$work/d_bad" ] && { echo "FAIL: $work/d_bad was created"; failures=$((failures + 1)); }

# Import both; the tokens read back equal those written (after the 64-byte shard header).
for fmt in nanogpt llmc; do
  if "$meshlm" prepare --from-$fmt "$work/$fmt" --gpt2-dir "$work/gpt2" --out "$work/d_$fmt" > "$work/stdout" 2> "$work/stderr" &&
     grep -q "train: 6000 tokens" "$work/stdout" && grep -q '"imported_from": "'$fmt'"' "$work/d_$fmt/meta.json" &&
     cmp -s <(tail -c +65 "$work/d_$fmt/train.bin") "$work/expected_train.bin"; then
    ok "import_$fmt"
  else
    fail "import_$fmt"
  fi
done

# The data directory from llm.c's shards trains one step.
if "$meshlm" train --data "$work/d_llmc" $tiny --train.steps 1 --out "$work/run" > "$work/stdout" 2> "$work/stderr" &&
   [ -s "$work/run/metrics.jsonl" ]; then
  ok llmc_data_trains
else
  fail llmc_data_trains
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
