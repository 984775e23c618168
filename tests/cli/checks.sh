# Shared by the CLI test scripts (sourced): pass/fail bookkeeping and the check for a clean
# refusal. A script ends with: echo "$passes passed, $failures failed"; [ "$failures" -eq 0 ]
failures=0
passes=0
check() {  # check NAME CONDITION_EXIT_CODE MESSAGE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; passes=$((passes + 1)); else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}
# refused NAME PATTERN: the last command (stderr in $work/err, exit code $rc) failed cleanly naming PATTERN.
refused() {
  local problem=""
  [ "$rc" -eq 2 ] || problem="exit code $rc, expected 2"
  [ -z "$problem" ] && [ "$(wc -l < "$work/err")" -ne 1 ] && problem="$(wc -l < "$work/err") lines on stderr, expected 1"
  [ -z "$problem" ] && ! grep -qE "^error: .*$2" "$work/err" && problem="message does not match /$2/"
  check "$1" "$([ -z "$problem" ]; echo $?)" "$problem: $(cat "$work/err")"
}
# wait_guarded PID: waits for PID (a job expected to end by itself), killing it after 40 s;
# its exit code in $rc.
wait_guarded() {
  ( sleep 40; kill -9 "$1" ) > /dev/null 2>&1 &
  local guard=$!
  wait "$1"
  rc=$?
  kill "$guard" 2> /dev/null
}
# rank_pids LAUNCHER_PID PATTERN: the processes of the ranks of a `meshlm train --nproc` job
# (children of its mpirun) whose OMPI_COMM_WORLD_RANK matches PATTERN (grep -x), one per line.
rank_pids() {
  local mpirun_pid p
  mpirun_pid=$(pgrep -P "$1" | head -1)
  for p in $(pgrep -P "$mpirun_pid"); do
    tr '\0' '\n' < "/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$p"
  done
}
