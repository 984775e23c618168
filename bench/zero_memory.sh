#!/usr/bin/env bash
# Per-rank memory of ZeRO stages 0-3 at dp = RANKS for one config: runs one training step per
# stage under mpirun and prints, for rank 0, the bytes of parameters + gradients + optimizer
# state kept between steps (the trainer's buffers) next to the ZeRO paper's formula, ZeRO-3's
# peak of gathered parameters, and every rank's peak resident set (VmHWM, which includes the
# activations, the working gradients of the step and the libraries).
# Usage: bench/zero_memory.sh BUILD_DIR [CONFIG=gpt2-124M] [RANKS=4]
set -euo pipefail
build=${1:-build}
config=${2:-gpt2-124M}
ranks=${3:-4}
meshlm="$(cd "$build" && pwd)/bin/meshlm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="$build/demo/kjv.txt"
[ -s "$text" ] || bash scripts/kjv-text.sh "$text"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
for zero in 0 1 2 3; do
  mpirun -np "$ranks" --oversubscribe --bind-to none /usr/bin/time -f "rank-hwm %M kB" \
    "$meshlm" train --config "configs/$config.toml" --data "$text" --dp "$ranks" --zero "$zero" \
    --train.steps 2 --train.micro_batch "$ranks" --train.eval_every 0 --train.eval_tokens 256 \
    > "$work/out$zero" 2> "$work/err$zero" || { cat "$work/out$zero" "$work/err$zero"; exit 1; }
done
python3 - "$work" "$ranks" <<'PY'
import re, sys
work, n = sys.argv[1], int(sys.argv[2])
def mib(s):
    v, unit = s.split()
    return float(v) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
print(f"{'ZeRO':<5} {'params':>10} {'grads':>10} {'optim':>10} {'total MiB':>10} {'formula':>10} {'ratio':>6} {'gathered peak':>14} {'max rank HWM MiB':>17}")
for zero in range(4):
    out = open(f"{work}/out{zero}").read()
    err = open(f"{work}/err{zero}").read()
    psi = int(re.search(r"meshlm train: (\d+) parameters", out).group(1))
    m = re.search(r"memory per rank: parameters ([0-9.]+ [KMG]iB).*?, gradients ([0-9.]+ [KMG]iB).*?, optimizer state ([0-9.]+ [KMG]iB)", out)
    p, g, o = (mib(m.group(i)) for i in (1, 2, 3))
    # f32 parameters (4 bytes, also the master weights), f32 gradients (4) and AdamW's two f32
    # moments (8): stage 1 shards the moments, 2 also the gradients, 3 also the parameters. At
    # stage 3 this is the ZeRO paper's (2+2+12)·Ψ/N (f16 parameters and gradients, f32 master
    # weights and moments: also 16 bytes per parameter).
    formula = {0: 16 * psi, 1: 8 * psi + 8 * psi / n, 2: 4 * psi + 12 * psi / n, 3: 16 * psi / n}[zero] / 2**20
    peak = re.search(r"gathered parameters peak at ([0-9.]+ [KMG]iB)", out)
    hwm = max(int(x) for x in re.findall(r"rank-hwm (\d+) kB", err)) / 1024
    print(f"{zero:<5} {p:10.1f} {g:10.1f} {o:10.1f} {p + g + o:10.1f} {formula:10.1f} {(p + g + o) / formula:6.3f} "
          f"{(f'{mib(peak.group(1)):.1f} MiB' if peak else '-'):>14} {hwm:17.0f}")
PY
