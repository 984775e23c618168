#!/usr/bin/env bash
# meshlm vs PyTorch, training step, same model, same threads, measured alternately in one
# run so that machine noise hits both. Prints each measurement and the ratio of medians.
#   bench/compare_pytorch.sh [BUILD_DIR] ; env: CONFIGS="small gpt2-124M" THREADS=1 ROUNDS=3 STEPS=10
set -euo pipefail
build=${1:-build}
configs=${CONFIGS:-"small gpt2-124M"}
threads=${THREADS:-1}
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
here=$(cd "$(dirname "$0")" && pwd)
# PyTorch's best set-up on this machine (shared/platform-notes.md): the OpenMP build of
# OpenBLAS with its AVX-512 kernels.
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
           OMP_NUM_THREADS="$threads")
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
field() { grep '^{' | /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads $threads; $rounds rounds of $steps steps each"
for c in $configs; do
  cfg="$here/../configs/$c.toml"
  ours=(); theirs=()
  for r in $(seq "$rounds"); do
    out=$(OMP_NUM_THREADS="$threads" "$build/bin/meshlm_step_bench" "$cfg" --threads "$threads" --steps "$steps")
    echo "$out" | head -1
    ours+=("$(echo "$out" | field median_ms)")
    out=$("${torch_env[@]}" /usr/bin/python3 "$here/pytorch_step.py" "$cfg" --threads "$threads" --steps "$steps")
    echo "$out" | head -1
    theirs+=("$(echo "$out" | field median_ms)")
  done
  m=$(printf '%s\n' "${ours[@]}" | median)
  p=$(printf '%s\n' "${theirs[@]}" | median)
  printf '%s, %s thread(s): meshlm %.1f ms/step, pytorch %.1f ms/step, pytorch/meshlm = %.2fx\n' \
    "$c" "$threads" "$m" "$p" "$(awk -v p="$p" -v m="$m" 'BEGIN {print p / m}')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
