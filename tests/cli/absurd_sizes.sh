#!/usr/bin/env bash
# Absurd model sizes in a config.json or a TOML config (n_embd 2^20 or 2^40, n_positions 2^40,
# n_layer 10^6 or 10^9) must be refused before anything is allocated: exit 2 within seconds,
# one line "error: ..." giving what the model needs and what the machine has, never
# std::bad_alloc (exit 3) or minutes of swapping. Covers train (TOML, overrides, --init-from),
# eval and generate. Usage: absurd_sizes.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

printf 'In the beginning God created the heaven and the earth. %.0s' $(seq 200) > "$work/text.txt"
small="--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 --train.micro_batch 2"
"$meshlm" train --data "$work/text.txt" $small --train.steps 1 --out "$work/run" > /dev/null 2>&1 ||
  { echo "FAIL: the tiny run to start from did not train"; exit 1; }

# expect NAME PATTERN CMD... : the command must exit 2 within 20 s with one "error:" line matching PATTERN.
expect() {
  local name=$1 pattern=$2
  shift 2
  local start=$SECONDS
  timeout 20 "$meshlm" "$@" > "$work/stdout" 2> "$work/stderr"
  local rc=$? problem=""
  [ "$rc" -eq 2 ] || problem="exit code $rc, expected 2 ($((SECONDS - start)) s)"
  [ -z "$problem" ] && [ "$(wc -l < "$work/stderr")" -ne 1 ] && problem="$(wc -l < "$work/stderr") lines on stderr, expected 1"
  [ -z "$problem" ] && ! grep -qE "^error: .*$pattern" "$work/stderr" && problem="message does not match /$pattern/"
  if [ -n "$problem" ]; then
    echo "FAIL $name: $problem"
    sed 's/^/    stderr: /' "$work/stderr"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$work/stderr")"
  fi
}

memory="needs at least .* of memory .* but this machine has [0-9.]+ [KMGTP]iB"
too_large="the model is too large"

# model_with KEY VALUE: a copy of the trained model whose config.json sets KEY to VALUE.
model_with() {
  local dir="$work/model_$1_$2"
  mkdir -p "$dir"
  cp "$work/run/model.safetensors" "$work/run/meshlm_tokenizer.json" "$dir/"
  python3 - "$work/run/config.json" "$dir/config.json" "$1" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c[sys.argv[3]] = int(sys.argv[4])
if sys.argv[3] == "n_positions": c["n_ctx"] = int(sys.argv[4])
json.dump(c, open(sys.argv[2], "w"))
PY
  echo "$dir"
}

too_few_bytes="holds [0-9]+ bytes, too few for the [0-9]+ parameters"
for case in "n_embd 1048576 $memory" "n_embd 1099511627776 $too_large" "n_positions 1099511627776 $memory" \
            "n_layer 1000000 $too_few_bytes" "n_layer 1000000000 $memory"; do
  read -r key value pattern <<< "$case"
  dir=$(model_with "$key" "$value")
  expect "eval_$key=$value" "$pattern" eval --checkpoint "$dir" --data "$work/text.txt"
  expect "generate_$key=$value" "$pattern" generate --checkpoint "$dir" --prompt "In" --max-new-tokens 2
  expect "train_init_from_$key=$value" "$pattern" train --init-from "$dir" --data "$work/text.txt" --train.steps 1 --out "$work/out_$key$value"
done

cat > "$work/billion_layers.toml" <<'T'
[model]
n_layer = 1000000000
n_embd = 16
n_head = 2
n_positions = 16
T
expect toml_n_layer_1e9 "$memory" train --config "$work/billion_layers.toml" --data "$work/text.txt" --out "$work/out_toml"
expect override_n_embd_2e20 "$memory" train --data "$work/text.txt" $small --model.n_embd 1048576 --model.n_head 16 --out "$work/out_o1"
expect override_n_positions_2e40 "$memory" train --data "$work/text.txt" $small --model.n_positions 1099511627776 --out "$work/out_o2"
expect override_n_layer_1e6 "$memory" train --data "$work/text.txt" $small --model.n_layer 1000000 --out "$work/out_o3"
expect override_batch "$memory" train --data "$work/text.txt" $small --train.micro_batch 1000000000000 --out "$work/out_o4"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all absurd sizes refused"
