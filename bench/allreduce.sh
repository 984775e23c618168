#!/usr/bin/env bash
# Our ring all-reduce against MPI_Allreduce at 2 and 4 ranks (see docs/comm.md).
#   bash bench/allreduce.sh BUILD_DIR [extra meshlm_allreduce_bench flags]
# RANKS="2 4" picks the rank counts. Ranks are not bound to cores and may outnumber them.
set -euo pipefail
build=${1:?usage: bench/allreduce.sh BUILD_DIR [flags]}
shift
bin="$build/bin/meshlm_allreduce_bench"
[[ -x "$bin" ]] || { echo "error: $bin not found (build the meshlm_allreduce_bench target)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
echo "machine: $(getconf _NPROCESSORS_ONLN) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for np in ${RANKS:-2 4}; do
  echo
  mpirun -np "$np" --oversubscribe --bind-to none "$bin" "$@"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
