#!/usr/bin/env bash
# meshlm vs PyTorch, training step, same model, same threads, same precision, measured
# alternately in one run so that machine noise hits both. Prints each measurement, then per
# config and precision the medians, the speed ratio and both peak memories.
#   bench/compare_pytorch.sh [BUILD_DIR] [--section.key value ...]
#   env: CONFIGS="small gpt2-124M" THREADS=1 PRECISIONS="fp32 bf16" ROUNDS=3 STEPS=10
# Overrides go to both systems, e.g. for GPT-2 at T = 1024:
#   CONFIGS=gpt2-124M bench/compare_pytorch.sh build --model.n_positions 1024 --train.block_size 1024 --train.micro_batch 1
# bf16 is meshlm's --precision bf16 against PyTorch's CPU autocast.
set -euo pipefail
build=${1:-build}
shift || true
overrides=("$@")
configs=${CONFIGS:-"small gpt2-124M"}
threads=${THREADS:-1}
precisions=${PRECISIONS:-"fp32 bf16"}
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
here=$(cd "$(dirname "$0")" && pwd)
# PyTorch's best set-up on this machine (shared/platform-notes.md): the OpenMP build of
# OpenBLAS with its AVX-512 kernels.
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
           OMP_NUM_THREADS="$threads")
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
field() { grep '^{' | /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads $threads; $rounds rounds of $steps steps each; overrides: ${overrides[*]:-none}"
summary=()
for c in $configs; do
  cfg="$here/../configs/$c.toml"
  for p in $precisions; do
    ours=(); theirs=(); mfu=(); our_mem=0; their_mem=0; disturbed=0
    for r in $(seq "$rounds"); do
      out=$(OMP_NUM_THREADS="$threads" "$build/bin/meshlm" bench --config "$cfg" --threads "$threads" --steps "$steps" \
            --precision "$p" "${overrides[@]}")
      echo "$out" | sed -n '1,2p;4,6p'
      ours+=("$(echo "$out" | field median_ms)")
      mfu+=("$(echo "$out" | field mfu)")
      [ "$(echo "$out" | field disturbed)" = "True" ] && disturbed=$((disturbed + 1))
      our_mem=$(echo "$out" | field peak_rss_mib)
      out=$("${torch_env[@]}" /usr/bin/python3 "$here/pytorch_step.py" "$cfg" --threads "$threads" --steps "$steps" \
            --precision "$p" "${overrides[@]}")
      echo "$out" | head -1
      theirs+=("$(echo "$out" | field median_ms)")
      their_mem=$(echo "$out" | field peak_rss_mib)
    done
    m=$(printf '%s\n' "${ours[@]}" | median)
    t=$(printf '%s\n' "${theirs[@]}" | median)
    u=$(printf '%s\n' "${mfu[@]}" | median)
    summary+=("$(printf '%s %s, %s thread(s): meshlm %.1f ms/step (MFU %.1f%%), pytorch %.1f ms/step, pytorch/meshlm = %.2fx; peak memory meshlm %.0f MiB, pytorch %.0f MiB (%.2fx)' \
      "$c" "$p" "$threads" "$m" "$(awk -v u="$u" 'BEGIN {print 100 * u}')" "$t" "$(awk -v t="$t" -v m="$m" 'BEGIN {print t / m}')" \
      "$our_mem" "$their_mem" "$(awk -v a="$our_mem" -v b="$their_mem" 'BEGIN {print a / b}')")$(
      [ $disturbed -gt 0 ] && echo "; $disturbed of $rounds meshlm runs DISTURBED (see their load lines)")")
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${summary[@]}"
