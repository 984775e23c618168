#!/usr/bin/env bash
# A user's mistake must give exactly one line "error: ..." naming the problem, exit code 2,
# and leave nothing in --out. Usage: bad_input.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

mkdir -p "$work/emptydir"
printf 'In the beginning God created the heaven and the earth. %.0s' $(seq 200) > "$work/text.txt"
: > "$work/empty.txt"
small="--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 --train.micro_batch 2 --train.steps 2"

# expect NAME PATTERN ARGS... : runs meshlm with ARGS --out $work/out_NAME and checks the outcome.
expect() {
  local name=$1 pattern=$2
  shift 2
  local out="$work/out_$name"
  "$meshlm" "$@" --out "$out" > "$work/stdout" 2> "$work/stderr"
  local rc=$?
  local lines
  lines=$(wc -l < "$work/stderr")
  local problem=""
  [ "$rc" -eq 2 ] || problem="exit code $rc, expected 2"
  [ -z "$problem" ] && [ "$lines" -ne 1 ] && problem="$lines lines on stderr, expected 1"
  [ -z "$problem" ] && ! grep -q '^error: ' "$work/stderr" && problem="stderr does not start with 'error: '"
  [ -z "$problem" ] && ! grep -qiE "$pattern" "$work/stderr" && problem="message does not mention /$pattern/"
  [ -z "$problem" ] && [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && problem="--out has files: $(ls -A "$out")"
  if [ -n "$problem" ]; then
    echo "FAIL $name: $problem"
    sed 's/^/    stderr: /' "$work/stderr"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$work/stderr")"
    passes=$((passes + 1))
  fi
}

cat > "$work/unknown_key.toml" <<'T'
[model]
n_layers = 2
T
cat > "$work/malformed.toml" <<'T'
[model
n_layer = 2
T
cat > "$work/wrong_type.toml" <<'T'
[train]
lr = "fast"
T

expect unknown_config_key "n_layers" train --config "$work/unknown_key.toml" --data "$work/text.txt" $small
expect malformed_config "malformed|toml" train --config "$work/malformed.toml" --data "$work/text.txt" $small
expect wrong_type "train.lr" train --config "$work/wrong_type.toml" --data "$work/text.txt" $small
expect missing_config "not found" train --config "$work/nope.toml" --data "$work/text.txt" $small
expect unknown_override "model.n_layerz" train --data "$work/text.txt" $small --model.n_layerz 2
expect bad_override_value "n_layer" train --data "$work/text.txt" $small --model.n_layer two
expect heads_do_not_divide "divisible" train --data "$work/text.txt" $small --model.n_head 3
expect missing_data "not found" train --data "$work/missing.txt" $small
expect empty_data "empty" train --data "$work/empty.txt" $small
expect data_is_directory "directory" train --data "$work" $small
expect unknown_device "device.*tpu" train --data "$work/text.txt" $small --device tpu
# Without a GPU (or a CUDA build) the device is refused; with one, the trainer says it is not wired yet.
expect cuda_device "cuda" train --data "$work/text.txt" $small --device cuda
expect negative_steps "train.steps" train --data "$work/text.txt" $small --train.steps -1
expect missing_data_option "data" train $small
expect bad_optimizer "optim.name.*adamw" train --data "$work/text.txt" $small --optim.name lion
expect block_exceeds_positions "block_size" train --data "$work/text.txt" $small --train.block_size 32
expect data_not_prepared "meta.json" train --data "$work/emptydir" $small
expect compress_ratio "parallel.compress_ratio must be in \\(0, 1\\]" train --data "$work/text.txt" $small --compress topk --compress-ratio 1.5
expect compress_rank "parallel.compress_rank must be at least 1" train --data "$work/text.txt" $small --compress powersgd --compress-rank 0
expect compress_zero3 "parallel.compress = int8 cannot be combined with parallel.zero = 3" train --data "$work/text.txt" $small --compress int8 --zero 3

# Model files: a good one, then truncated and corrupted copies given to --init.
"$meshlm" train --data "$work/text.txt" $small --out "$work/good" > /dev/null 2>&1 || { echo "FAIL: could not train the reference model"; exit 1; }
for f in model.safetensors config.json; do [ -s "$work/good/$f" ] || { echo "FAIL: --out lacks $f"; failures=$((failures + 1)); }; done
mkdir -p "$work/truncated" "$work/corrupt" "$work/badjson" "$work/noweights"
cp "$work/good/config.json" "$work/truncated/" && head -c 1000 "$work/good/model.safetensors" > "$work/truncated/model.safetensors"
cp "$work/good/config.json" "$work/corrupt/" && cp "$work/good/model.safetensors" "$work/corrupt/"
printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$work/corrupt/model.safetensors" conv=notrunc 2>/dev/null
cp "$work/good/model.safetensors" "$work/badjson/" && echo '{"n_embd": ' > "$work/badjson/config.json"
cp "$work/good/config.json" "$work/noweights/"
expect truncated_safetensors "safetensors" train --init-from "$work/truncated" --data "$work/text.txt" --train.steps 1
expect corrupt_safetensors "safetensors" train --init-from "$work/corrupt" --data "$work/text.txt" --train.steps 1
expect malformed_model_config "config.json" train --init-from "$work/badjson" --data "$work/text.txt" --train.steps 1
expect missing_weights "model.safetensors" train --init-from "$work/noweights" --data "$work/text.txt" --train.steps 1
expect init_model_override "model.n_layer" train --init-from "$work/good" --data "$work/text.txt" --model.n_layer 3

# --resume with a config that changes the model is refused, and the run is left as it was.
"$meshlm" train --data "$work/text.txt" $small --out "$work/run" --train.steps 3 > /dev/null 2>&1 || { echo "FAIL: could not train the run to resume"; exit 1; }
before=$(ls -R "$work/run" | md5sum)
"$meshlm" train --resume "$work/run" --data "$work/text.txt" --model.n_layer 2 > /dev/null 2> "$work/stderr"; rc=$?
if [ $rc -eq 2 ] && grep -q "model.n_layer" "$work/stderr" && [ "$(wc -l < "$work/stderr")" -eq 1 ] && [ "$before" = "$(ls -R "$work/run" | md5sum)" ]; then
  echo "ok   resume_incompatible_config: $(cat "$work/stderr")"; passes=$((passes + 1))
else
  echo "FAIL resume_incompatible_config (exit $rc): $(cat "$work/stderr")"; failures=$((failures + 1))
fi
"$meshlm" train --resume "$work/nothing_here" --data "$work/text.txt" > /dev/null 2> "$work/stderr"; rc=$?
if [ $rc -eq 2 ] && grep -q "no checkpoint" "$work/stderr"; then
  echo "ok   resume_without_checkpoint: $(cat "$work/stderr")"; passes=$((passes + 1))
else
  echo "FAIL resume_without_checkpoint (exit $rc): $(cat "$work/stderr")"; failures=$((failures + 1))
fi

# eval and generate check --device: an unknown one, and cuda with --tp 2 and one process (no GPU
# or no CUDA build; with a GPU, --tp 2 needs two processes): one line, exit 2.
for cmd in eval generate; do
  data=(); [ $cmd = eval ] && data=(--data "$work/text.txt")
  for dev in "tpu:device.*tpu" "cuda --tp 2:cuda|processes"; do
    "$meshlm" $cmd --checkpoint "$work/run" "${data[@]}" --device ${dev%%:*} > /dev/null 2> "$work/stderr"; rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l < "$work/stderr")" -eq 1 ] && grep -qE "^error: .*${dev#*:}" "$work/stderr"; then
      echo "ok   ${cmd}_device_${dev%%:*}: $(cat "$work/stderr")"; passes=$((passes + 1))
    else
      echo "FAIL ${cmd}_device_${dev%%:*} (exit $rc): $(cat "$work/stderr")"; failures=$((failures + 1))
    fi
  done
done

# The good model loads back with --init and trains on.
if "$meshlm" train --init-from "$work/good" --data "$work/text.txt" --train.steps 1 --train.micro_batch 2 > /dev/null 2>&1; then
  echo "ok   init_from_saved_model"; passes=$((passes + 1))
else
  echo "FAIL init_from_saved_model"; failures=$((failures + 1))
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
