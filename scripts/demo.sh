#!/usr/bin/env bash
# `make demo`: prepare the King James Bible with a BPE tokenizer, train a small GPT on it for
# a few minutes with evaluations, then sample from the trained model.
set -euo pipefail
build=${1:-build}
meshlm="$build/bin/meshlm"
text="$build/demo/kjv.txt"
data="$build/demo/kjv-bpe"
run="runs/demo"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"

echo "== 1. prepare: $(wc -c < "$text") bytes of the King James Bible -> 4,096-token BPE"
[ -f "$data/meta.json" ] || "$meshlm" prepare --input "$text" --out "$data" --tokenizer bpe --vocab-size 4096 --val-fraction 0.02

echo "== 2. train configs/demo.toml (checkpoints and metrics in $run)"
rm -rf "$run"
"$meshlm" train --config configs/demo.toml --data "$data" --out "$run"

echo "== 3. evaluate the best checkpoint on the validation split"
"$meshlm" eval --checkpoint "$run/checkpoints/$(cat "$run/checkpoints/best")" --data "$data"

echo "== 4. generate"
"$meshlm" generate --checkpoint "$run" --prompt "And God said" --max-new-tokens 60 --temperature 0.8 --top-k 50 --seed 1
