#!/usr/bin/env bash
# Writes the King James Bible (Debian package bible-kjv), one verse per line, to $1.
set -euo pipefail
out=${1:?usage: kjv-text.sh OUT_FILE}
command -v bible >/dev/null || { echo "error: the 'bible' command is missing (apt-get install bible-kjv)" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
bible -l 100000 "gen1:1-rev22:21" | sed -E 's/^ +[0-9]+ //' | grep -v '^$' > "$tmp"
mv "$tmp" "$out"
