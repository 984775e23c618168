#!/usr/bin/env bash
# `meshlm prepare` on a user's mistake: exactly one stderr line "error: ...", exit code 2, and
# no output directory (nor a temporary one) left behind. Then one good run, whose data
# directory a second run must refuse to overwrite. Usage: prepare_errors.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

mkdir -p "$work/in" "$work/outs"
for i in $(seq 300); do echo "$i: In the beginning God created the heaven and the earth."; done > "$work/in/text.txt"
: > "$work/in/empty.txt"
printf 'hello\nworld \xff rest\n' > "$work/in/latin1.txt"
echo "just one line" > "$work/in/one_line.txt"
mkdir -p "$work/taken" && echo mine > "$work/taken/keep.txt"

# expect NAME PATTERN OUT ARGS... : runs `meshlm prepare ARGS` and checks the outcome. OUT is
# the --out it was given ("" if none): it must not exist afterwards unless it existed before.
expect() {
  local name=$1 pattern=$2 out=$3
  shift 3
  local existed=0
  [ -n "$out" ] && [ -e "$out" ] && existed=1
  "$meshlm" prepare "$@" > "$work/stdout" 2> "$work/stderr"
  local rc=$?
  local lines problem=""
  lines=$(wc -l < "$work/stderr")
  [ "$rc" -eq 2 ] || problem="exit code $rc, expected 2"
  [ -z "$problem" ] && [ "$lines" -ne 1 ] && problem="$lines lines on stderr, expected 1"
  [ -z "$problem" ] && ! grep -q '^error: ' "$work/stderr" && problem="stderr does not start with 'error: '"
  [ -z "$problem" ] && ! grep -qiE -- "$pattern" "$work/stderr" && problem="message does not mention /$pattern/"
  [ -z "$problem" ] && [ -n "$out" ] && [ "$existed" -eq 0 ] && [ -e "$out" ] && problem="$out was created"
  local leftovers
  leftovers=$(find "$work" -name '*.tmp.*' | head -3)
  [ -z "$problem" ] && [ -n "$leftovers" ] && problem="temporary files left: $leftovers"
  if [ -n "$problem" ]; then
    echo "FAIL $name: $problem"
    sed 's/^/    stderr: /' "$work/stderr"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$work/stderr")"
    passes=$((passes + 1))
  fi
}

out="$work/outs/data"
text="$work/in/text.txt"
expect missing_input "not found.*nope.txt" "$out" --input "$work/in/nope.txt" --out "$out"
expect missing_second_input "not found.*nope2.txt" "$out" --input "$text" "$work/in/nope2.txt" --out "$out"
expect empty_input "empty input" "$out" --input "$work/in/empty.txt" --out "$out"
expect out_not_empty "already exists and is not empty" "$work/taken" --input "$text" --out "$work/taken"
expect val_fraction_zero "--val-fraction" "$out" --input "$text" --out "$out" --val-fraction 0
expect val_fraction_one "--val-fraction" "$out" --input "$text" --out "$out" --val-fraction 1
expect val_fraction_text "val-fraction" "$out" --input "$text" --out "$out" --val-fraction lots
expect unknown_tokenizer "tokenizer" "$out" --input "$text" --out "$out" --tokenizer wordpiece
expect byte_vocab_size "--vocab-size 300" "$out" --input "$text" --out "$out" --vocab-size 300
expect not_utf8_bpe "latin1.txt is not valid UTF-8 at byte offset 12" "$out" \
  --input "$work/in/latin1.txt" --out "$out" --tokenizer bpe
expect gpt2_files_missing "fetch-gpt2-tokenizer" "$out" --input "$text" --out "$out" --tokenizer gpt2 \
  --gpt2-dir "$work/no_gpt2"
expect val_split_empty "split is empty" "$work/outs/deep/data" --input "$work/in/one_line.txt" \
  --out "$work/outs/deep/data" --val-fraction 0.01
expect no_input_option "input" "$out" --out "$out"
expect no_out_option "out" "" --input "$text"
[ -e "$work/outs/deep" ] && { echo "FAIL: parent directory $work/outs/deep was left behind"; failures=$((failures + 1)); }
[ -n "$(cat "$work/taken/keep.txt")" ] || { echo "FAIL: --out's existing file was touched"; failures=$((failures + 1)); }

# A good run writes a complete data directory; a second run onto it is refused untouched.
if "$meshlm" prepare --input "$text" --out "$out" --val-fraction 0.1 > "$work/stdout" 2> "$work/stderr"; then
  missing=""
  for f in train.bin val.bin meta.json meshlm_tokenizer.json; do [ -s "$out/$f" ] || missing="$missing $f"; done
  if [ -z "$missing" ] && grep -q "train:" "$work/stdout"; then
    echo "ok   good_run"; passes=$((passes + 1))
  else
    echo "FAIL good_run: missing$missing"; cat "$work/stdout"; failures=$((failures + 1))
  fi
  before=$(cksum < "$out/train.bin")
  expect out_is_a_data_dir "already exists" "$out" --input "$text" --out "$out" --seed 5
  [ "$(cksum < "$out/train.bin")" = "$before" ] || { echo "FAIL: existing train.bin changed"; failures=$((failures + 1)); }
else
  echo "FAIL good_run: exit code $?"; sed 's/^/    stderr: /' "$work/stderr"; failures=$((failures + 1))
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
