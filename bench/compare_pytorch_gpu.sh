#!/usr/bin/env bash
# meshlm vs PyTorch on one GPU, training step, same model, same precision: `meshlm bench
# --device cuda`, PyTorch eager and PyTorch under torch.compile (bench/pytorch_gpu_step.py),
# measured alternately in one session so that clock and thermal drift hit all three. Prints each
# measurement, then per config and precision the medians of tokens/s, the speed ratios, MFU
# (PaLM accounting, all three against the same nominal peak) and each one's peak GPU memory.
#   bench/compare_pytorch_gpu.sh [BUILD_DIR] [--section.key value ...]
#   env: CONFIGS="gpt2-124M" PRECISIONS="fp32 bf16" ROUNDS=3 STEPS=20 WARMUP=3
#        PEAK_TFLOPS (default H100 SXM dense: bf16 989, fp32 67; one peak per precision for all
#        three, also with TF32=1) TF32=1 (PyTorch's fp32 on TF32) PYTHON=/usr/bin/python3
# Overrides go to both systems, e.g. gpt2-124M-1k of shared/bench-configs.md:
#   bench/compare_pytorch_gpu.sh build --model.n_positions 1024 --train.block_size 1024 --train.micro_batch 16
# bf16 is meshlm's --precision bf16 against PyTorch's CUDA autocast; fp32 is true fp32 on both
# (TF32 off) unless TF32=1.
set -euo pipefail
build=${1:-build}
shift || true
overrides=("$@")
configs=${CONFIGS:-"gpt2-124M"}
precisions=${PRECISIONS:-"fp32 bf16"}
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
warmup=${WARMUP:-3}
python=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
torch_extra=()
[ "${TF32:-0}" = 1 ] && torch_extra+=(--tf32)
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# fields KEY...: those keys of the JSON line on stdin, space-separated (nan where one is missing)
fields() { grep '^{' | "$python" -c "import json,sys; d=json.loads(sys.stdin.read()); print(*(d.get(k, 'nan') for k in sys.argv[1:]))" "$@"; }
# run CMD...: its stdout; on failure shows it and stops
run() {
  local out
  if ! out=$("$@"); then
    printf '%s\n' "$out" "FAILED: $*" >&2
    exit 1
  fi
  printf '%s\n' "$out"
}
gpu_state() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,utilization.gpu,memory.used,temperature.gpu,clocks.sm --format=csv,noheader | head -1
  else
    echo "unknown (no nvidia-smi)"
  fi
}
echo "GPU before: $(gpu_state); $rounds rounds of $steps steps after $warmup warm-up; overrides: ${overrides[*]:-none}"
summary=()
for c in $configs; do
  cfg="$here/../configs/$c.toml"
  for p in $precisions; do
    case $p in bf16) peak=${PEAK_TFLOPS:-989} ;; *) peak=${PEAK_TFLOPS:-67} ;; esac
    ours=(); eager=(); compiled=(); mfu_o=(); mfu_e=(); mfu_c=(); mem_o=0; mem_e=0; mem_c=0; res_e=0; res_c=0
    for r in $(seq "$rounds"); do
      echo "-- $c $p, round $r"
      out=$(run "$build/bin/meshlm" bench --device cuda --config "$cfg" --precision "$p" --steps "$steps" \
            --warmup "$warmup" "${overrides[@]}")
      echo "$out" | grep -v '^{'
      vals=$(echo "$out" | fields tokens_per_s gflops_palm peak_gpu_mib)
      read -r tps gf mem_o <<<"$vals"
      ours+=("$tps"); mfu_o+=("$(awk -v g="$gf" -v p="$peak" 'BEGIN {print g / (p * 1e3)}')")
      for mode in eager compile; do
        flag=(); [ "$mode" = compile ] && flag=(--compile)
        out=$(run "$python" "$here/pytorch_gpu_step.py" "$cfg" --steps "$steps" --warmup "$warmup" --precision "$p" \
              --peak-tflops "$peak" "${flag[@]}" "${torch_extra[@]}" "${overrides[@]}")
        echo "$out" | sed -n '1,2p'
        vals=$(echo "$out" | fields tokens_per_s mfu peak_gpu_mib peak_gpu_reserved_mib)
        read -r tps mfu mem res <<<"$vals"
        if [ "$mode" = eager ]; then
          eager+=("$tps"); mfu_e+=("$mfu"); mem_e=$mem; res_e=$res
        else
          compiled+=("$tps"); mfu_c+=("$mfu"); mem_c=$mem; res_c=$res
        fi
      done
    done
    o=$(printf '%s\n' "${ours[@]}" | median)
    e=$(printf '%s\n' "${eager[@]}" | median)
    k=$(printf '%s\n' "${compiled[@]}" | median)
    uo=$(printf '%s\n' "${mfu_o[@]}" | median)
    ue=$(printf '%s\n' "${mfu_e[@]}" | median)
    uk=$(printf '%s\n' "${mfu_c[@]}" | median)
    summary+=("$(printf '%s %s: tokens/s meshlm %.0f, torch eager %.0f, torch compile %.0f; meshlm/eager = %.2fx, meshlm/compile = %.2fx\n  MFU (of %s TFLOP/s): meshlm %.1f%%, eager %.1f%%, compile %.1f%%; peak GPU memory: meshlm %.0f MiB, eager %.0f MiB (%.0f reserved), compile %.0f MiB (%.0f reserved)' \
      "$c" "$p" "$o" "$e" "$k" "$(awk -v a="$o" -v b="$e" 'BEGIN {print a / b}')" "$(awk -v a="$o" -v b="$k" 'BEGIN {print a / b}')" \
      "$peak" "$(awk -v u="$uo" 'BEGIN {print 100 * u}')" "$(awk -v u="$ue" 'BEGIN {print 100 * u}')" \
      "$(awk -v u="$uk" 'BEGIN {print 100 * u}')" "$mem_o" "$mem_e" "$res_e" "$mem_c" "$res_c")")
  done
done
echo "GPU after: $(gpu_state)"
printf '%s\n' "${summary[@]}"
