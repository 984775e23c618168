#!/usr/bin/env bash
# Launching parallel runs:
#  - under mpirun without --dp, dp = processes / (tp x pp); tp x pp not dividing them is one
#    error line, exit 2 (also for `--nproc N`, before anything starts);
#  - a failed `--nproc` run shows only meshlm's own error line (exit 2), not Open MPI's banner
#    about the non-zero exit; a rank's crash stays visible, with mpirun's exit code.
# Usage: launch.sh MESHLM_BINARY SOURCE_DIR
set -u
meshlm=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
small=(--config tiny --model.n_layer 2 --train.micro_batch 4 --train.block_size 32 --train.eval_tokens 256
       --train.eval_every 0 --train.steps 2)
data=(--data "$src/docs/CLI.md")
mpirun=(mpirun --oversubscribe --bind-to none)

# 1. dp from the world size.
timeout 180 "${mpirun[@]}" -np 4 "$meshlm" train "${small[@]}" "${data[@]}" --tp 2 > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "mpirun -np 4 --tp 2: exit code $rc: $(cat "$work/err")"
grep -q "^mesh: 4 ranks = dp 2 x pp 1 x tp 2" "$work/out" || fail "mpirun -np 4 --tp 2: no dp 2 mesh line in: $(cat "$work/out")"
timeout 120 "${mpirun[@]}" -np 2 "$meshlm" train "${small[@]}" "${data[@]}" > "$work/out" 2> "$work/err"
rc=$?
[ $rc -eq 0 ] || fail "mpirun -np 2: exit code $rc: $(cat "$work/err")"
grep -q "^mesh: 2 ranks = dp 2 x pp 1 x tp 1" "$work/out" || fail "mpirun -np 2: no dp 2 mesh line in: $(cat "$work/out")"

# expect_error NAME PATTERN LINES ARGS...: exit 2 and one "error: " line matching PATTERN; with
# LINES = only, nothing else on stderr.
expect_error() {
  local name=$1 pattern=$2 lines=$3
  shift 3
  timeout 90 "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  if [ $rc -ne 2 ]; then fail "$name: exit code $rc, expected 2: $(cat "$work/err")"
  elif [ "$(grep -c '^error: ' "$work/err")" -ne 1 ]; then fail "$name: not one error line: $(cat "$work/err")"
  elif [ "$lines" = only ] && [ "$(wc -l < "$work/err")" -ne 1 ]; then fail "$name: more than the error line on stderr: $(cat "$work/err")"
  elif ! grep '^error: ' "$work/err" | grep -qE -- "$pattern"; then fail "$name: message does not match /$pattern/: $(cat "$work/err")"
  fi
}
expect_error "--nproc 3 --tp 2" "--nproc 3 is not a multiple of tp 2 x pp 1 = 2" only \
  "$meshlm" train --nproc 3 --tp 2 "${small[@]}" "${data[@]}"
expect_error "--nproc 3 --dp 2" "--nproc 3 does not match the mesh dp 2 x pp 1 x tp 1 = 2 ranks" only \
  "$meshlm" train --nproc 3 --dp 2 "${small[@]}" "${data[@]}"
# A user's own mpirun: meshlm's line (Open MPI then adds its own report).
expect_error "mpirun -np 3 --tp 2" "tp 2 x pp 1 = 2 does not divide the 3 processes launched" any \
  "${mpirun[@]}" -np 3 "$meshlm" train "${small[@]}" "${data[@]}" --tp 2

# 2. Failed --nproc runs: a config error (read before launching), errors the ranks find.
printf '[train]\nlr = "fast"\n' > "$work/bad.toml"
expect_error "config error" "train.lr" only "$meshlm" train --nproc 2 --config "$work/bad.toml" "${data[@]}"
expect_error "missing data" "not found" only "$meshlm" train --nproc 2 "${small[@]}" --data "$work/missing.txt"
expect_error "micro_batch < ranks" "micro_batch" only "$meshlm" train --nproc 3 "${small[@]}" "${data[@]}" --train.micro_batch 2
expect_error "eval, missing data" "not found" only "$meshlm" eval --nproc 2 --checkpoint "$work/none" --data "$work/missing.txt"

# 3. The filter itself, on Open MPI 4's and 5's banners, with a stand-in mpirun.
mkdir -p "$work/bin"
cat > "$work/bin/mpirun" <<'SH'
#!/usr/bin/env bash
rule=--------------------------------------------------------------------------
echo "error: a rank's own message" >&2
printf -- '-------------------------------------------------------\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code. Per user-direction, the job has been aborted.\n-------------------------------------------------------\n' >&2
printf -- '%s\nprterun detected that one or more processes exited with non-zero status,\nthus causing the job to be terminated. The first process to do so was:\n\n   Process name: [prterun-vm-1@1,1]\n   Exit code:    2\n%s\n' $rule $rule >&2
if [ "${FAKE_CRASH:-0}" = 1 ]; then
  printf -- '%s\nmpirun noticed that process rank 1 with PID 0 on node vm exited on signal 11 (Segmentation fault).\n%s\n' $rule $rule >&2
  exit 139
fi
exit 2
SH
chmod +x "$work/bin/mpirun"
PATH="$work/bin:$PATH" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" > /dev/null 2> "$work/err"
rc=$?
[ $rc -eq 2 ] && [ "$(cat "$work/err")" = "error: a rank's own message" ] || fail "filter: exit $rc, stderr: $(cat "$work/err")"
FAKE_CRASH=1 PATH="$work/bin:$PATH" "$meshlm" train --nproc 2 "${small[@]}" "${data[@]}" > /dev/null 2> "$work/err"
rc=$?
{ [ $rc -eq 139 ] && grep -q "exited on signal 11 (Segmentation fault)" "$work/err" && ! grep -q "non-zero" "$work/err"; } \
  || fail "filter, crash: exit $rc, stderr: $(cat "$work/err")"

[ $failures -eq 0 ] && echo "all launch checks passed"
exit $((failures > 0))
