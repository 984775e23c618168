#!/usr/bin/env bash
# `meshlm bench`: a short run prints the step figures, MFU against the measured peak, the
# load, a profile whose ops account for the step, and a JSON line; mistakes exit 2 with one
# error line. Usage: bench.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
cd "$2" || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for p in fp32 bf16; do
  timeout 120 "$meshlm" bench --config tiny --model.n_layer 1 --train.micro_batch 4 --steps 2 --warmup 1 \
    --threads 1 --precision $p --profile > "$work/out" 2> "$work/err"
  rc=$?
  [ $rc -eq 0 ] || { fail "$p: exit code $rc: $(cat "$work/err")"; continue; }
  grep -q "^meshlm bench: tiny .*, $p, 1 thread" "$work/out" || fail "$p: no header in: $(cat "$work/out")"
  grep -q "^peak: [0-9.]* GFLOP/s .* -> MFU [0-9.]*%" "$work/out" || fail "$p: no MFU line"
  grep -qE "^load average: [0-9.]+ before, [0-9.]+ after, [0-9]+ CPUs; step spread [0-9.]+%: (quiet|DISTURBED)" "$work/out" || fail "$p: no load and spread line"
  grep -qE "\"spread\": [0-9.]+, \"disturbed\": (true|false)}" "$work/out" || fail "$p: JSON lacks spread/disturbed"
  grep -q "^peak memory: [0-9]* MiB resident" "$work/out" || fail "$p: no peak memory line"
  grep -q "^linear_backward .* 5$" "$work/out" || fail "$p: profile lacks linear_backward x5 (4 in a block + head): $(cat "$work/out")"
  grep -q '^{"system": "meshlm", "precision": "'$p'"' "$work/out" || fail "$p: no JSON line"
  # The profile's rows (kernels, optimizer, clipping, the rest) add up to the step.
  /usr/bin/python3 - "$work/out" <<'PY' || fail "$p: profile shares do not add up to 100%"
import re, sys
rows = [float(m.group(1)) for m in re.finditer(r"^\S.*?\s+[0-9.]+\s+(-?[0-9.]+)%\s+\d+$", open(sys.argv[1]).read(), re.M)]
sys.exit(0 if rows and abs(sum(rows) - 100) < 1.5 else 1)
PY
done

expect_error() {
  local name=$1 pattern=$2
  shift 2
  timeout 60 "$meshlm" bench "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  [ $rc -eq 2 ] || { fail "$name: exit code $rc (want 2)"; return; }
  [ "$(wc -l < "$work/err")" -eq 1 ] && grep -qE "^error: .*($pattern)" "$work/err" || fail "$name: stderr: $(cat "$work/err")"
}
expect_error "unknown config" "no-such-config" --config no-such-config
expect_error "bad precision" "fp8" --config tiny --precision fp8
expect_error "bad key" "train.nope" --config tiny --train.nope 3
[ $failures -eq 0 ] && echo "bench: all checks passed"
exit $((failures > 0))
