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
