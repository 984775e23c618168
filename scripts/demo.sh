#!/usr/bin/env bash
# `make demo`: trains the tiny config on the King James Bible for a few minutes and prints
# the falling loss, then saves the model under runs/demo.
set -euo pipefail
build=${1:-build}
data="$build/data/kjv.txt"
[ -s "$data" ] || bash scripts/kjv-text.sh "$data"
echo "demo: training configs/tiny.toml on $(wc -c < "$data") bytes of the King James Bible"
"$build/bin/meshlm" train --config configs/tiny.toml --data "$data" --out runs/demo \
  --train.steps 1500 --train.log_every 25 --train.eval_every 250
