#!/usr/bin/env bash
# Runs each libFuzzer target of a MESHLM_FUZZ build for SECONDS, one after another (one job
# each), starting from the checked-in seed corpus; new inputs go to BUILD/fuzz-corpus/<target>
# and crashes, timeouts and out-of-memory inputs to BUILD/fuzz-artifacts/<target>/. Prints one
# line per target (runs, seconds, corpus size) and fails if any target found something.
# Usage: run-fuzz.sh BUILD SECONDS [TARGET...]
set -u
build=$1
seconds=$2
shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for bin in "$build"/fuzz/fuzz_*; do targets+=("$(basename "$bin" | sed 's/^fuzz_//')"); done
fi
found=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "no fuzz target $t in $build/fuzz"; exit 2; }
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$build/fuzz-artifacts/$t.log"
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is an out-of-memory.
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$corpus" "$src/fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  if [ "$rc" -ne 0 ]; then
    found=1
    echo "FOUND $t (exit $rc): $(grep -m1 -E 'ERROR|Exception|terminate|SUMMARY' "$log"); see $log and $artifacts"
  else
    echo "ok    $t: ${runs:-?} runs in ${seconds} s, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done
exit $found
