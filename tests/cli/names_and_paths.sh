#!/usr/bin/env bash
# Config names and model paths from anywhere:
#  - `--config tiny` resolves from any working directory, in train and bench, from the configs
#    compiled in and, for an installed meshlm, from <prefix>/share/meshlm/configs first; an
#    unknown name is one error line that lists the names;
#  - eval and generate accept every path `train --init-from` accepts (a run directory, its
#    checkpoints/ folder, checkpoints/best and checkpoints/latest, a checkpoint, a
#    model.safetensors file), and a path holding no model is one line naming it;
#  - generate past the model's context (n_positions 16 here) completes every token asked for.
# Usage: names_and_paths.sh MESHLM_BINARY CMAKE_COMMAND BUILD_DIR
set -u
meshlm=$1
cmake=$2
build=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
mkdir -p "$work/elsewhere"
cd "$work/elsewhere" || exit 1  # no configs/ here, and no source tree
printf 'It was the best of times, it was the worst of times. %.0s' $(seq 100) > text.txt
small=(--model.n_layer 1 --model.n_positions 16 --train.micro_batch 2 --train.eval_tokens 64)

# expect_error NAME PATTERN ARGS...: exit 2, exactly one line on stderr, "error: " matching PATTERN.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  if [ $rc -ne 2 ] || [ "$(wc -l < "$work/err")" -ne 1 ] || ! grep -qE "^error: .*$pattern" "$work/err"; then
    fail "$name: exit $rc, stderr: $(cat "$work/err")"
  fi
}

# 1. Config names.
for name in tiny tiny.toml configs/tiny.toml; do
  timeout 120 "$meshlm" train --config $name --data text.txt "${small[@]}" --train.steps 1 > "$work/out" 2> "$work/err" \
    || fail "train --config $name: $(cat "$work/err")"
  grep -q "(1 layer, 4 heads, n_embd 128)" "$work/out" || fail "train --config $name did not read tiny: $(head -1 "$work/out")"
done
timeout 120 "$meshlm" bench --config tiny --model.n_layer 1 --train.micro_batch 2 --steps 1 --warmup 0 --threads 1 \
  > "$work/out" 2> "$work/err" || fail "bench --config tiny: $(cat "$work/err")"
grep -q "^meshlm bench: tiny (0.2 M parameters, B 2 x T 128)" "$work/out" || fail "bench --config tiny: $(head -1 "$work/out")"
expect_error "unknown config name" "nope.*names: demo, gpt2-124M, small, tiny" "$meshlm" train --config nope --data text.txt
expect_error "unknown config name (bench)" "nope.*names: demo, gpt2-124M, small, tiny" "$meshlm" bench --config nope
expect_error "missing config file" "$work/none.toml.*not found" "$meshlm" train --config "$work/none.toml" --data text.txt

# An installed meshlm reads <prefix>/share/meshlm/configs before its compiled-in copies.
if "$cmake" --install "$build" --prefix "$work/prefix" > "$work/install.log" 2>&1; then
  [ -f "$work/prefix/share/meshlm/configs/tiny.toml" ] || fail "install: no share/meshlm/configs/tiny.toml"
  sed -i 's/^n_layer = 4$/n_layer = 3/' "$work/prefix/share/meshlm/configs/tiny.toml"
  timeout 120 "$work/prefix/bin/meshlm" train --config tiny --data text.txt --model.n_positions 16 --train.micro_batch 2 \
    --train.steps 1 --train.eval_tokens 64 > "$work/out" 2> "$work/err" || fail "installed train --config tiny: $(cat "$work/err")"
  grep -q "(3 layers, " "$work/out" || fail "installed meshlm did not read share/meshlm/configs/tiny.toml: $(head -1 "$work/out")"
else
  fail "cmake --install: $(tail -5 "$work/install.log")"
fi

# 2. Model paths: a run with two checkpoints and a final model.
timeout 120 "$meshlm" train --config tiny --data text.txt "${small[@]}" --train.steps 4 --train.eval_every 2 --out run \
  > /dev/null 2> "$work/err" || fail "training the run: $(cat "$work/err")"
for path in run run/ run/checkpoints run/checkpoints/best run/checkpoints/latest "run/checkpoints/$(cat run/checkpoints/latest)" \
            run/model.safetensors "$PWD/run/checkpoints/$(cat run/checkpoints/best)/model.safetensors"; do
  timeout 60 "$meshlm" eval --checkpoint "$path" --data text.txt --tokens 64 > "$work/out" 2> "$work/err" \
    && grep -q "^val split of text.txt: loss " "$work/out" || fail "eval --checkpoint $path: $(cat "$work/err")"
  timeout 60 "$meshlm" generate --checkpoint "$path" --prompt It --max-new-tokens 3 > "$work/out" 2> "$work/err" \
    && grep -q "^generated 3 tokens" "$work/err" || fail "generate --checkpoint $path: $(cat "$work/err")"
  timeout 60 "$meshlm" train --init-from "$path" --data text.txt --train.micro_batch 2 --train.steps 1 --train.eval_tokens 64 \
    > /dev/null 2> "$work/err" || fail "train --init-from $path: $(cat "$work/err")"
done
for cmd in eval generate; do
  data=(); [ $cmd = eval ] && data=(--data text.txt)
  expect_error "$cmd: missing path" "--checkpoint nothing_here: not found" "$meshlm" $cmd --checkpoint nothing_here "${data[@]}"
  expect_error "$cmd: a file that is no model" "--checkpoint run/metrics.jsonl is a file but not a model: expected" \
    "$meshlm" $cmd --checkpoint run/metrics.jsonl "${data[@]}"
  expect_error "$cmd: a directory without a model" "--checkpoint $work holds no model: expected" \
    "$meshlm" $cmd --checkpoint "$work" "${data[@]}"
done
echo step_999999 > "$work/best"
expect_error "dangling pointer" "points to checkpoint step_999999, which does not exist" \
  "$meshlm" eval --checkpoint "$work/best" --data text.txt

# 3. Past the context: 40 tokens from a 16-position model, and a prompt longer than the context.
timeout 60 "$meshlm" generate --checkpoint run --prompt It --max-new-tokens 40 --temperature 0 > "$work/out" 2> "$work/err" \
  && grep -q "^generated 40 tokens" "$work/err" || fail "generate past the context: $(cat "$work/err")"
timeout 60 "$meshlm" generate --checkpoint run --prompt "It was the best of times, it was" --max-new-tokens 5 > "$work/out" \
  2> "$work/err" && grep -q "^note: the prompt has 32 tokens, more than the model's context (16): it sees the last 16" "$work/err" \
  || fail "a prompt longer than the context: $(cat "$work/err")"

[ $failures -eq 0 ] && echo "all checks passed"
exit $((failures > 0))
