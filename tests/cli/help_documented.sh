#!/usr/bin/env bash
# docs/CLI.md must hold, line for line, what `meshlm [COMMAND] --help` prints for every command,
# so the reference cannot drift from the program.
set -u
meshlm=$1 doc=$2/docs/CLI.md
status=0
for cmd in "" prepare train eval generate keys bench verify supervise; do
  help=$("$meshlm" $cmd --help) || { echo "meshlm $cmd --help failed"; exit 1; }
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    grep -qxF -- "$line" "$doc" || { echo "docs/CLI.md lacks (from meshlm $cmd --help): $line"; status=1; }
  done <<< "$help"
done
# Every subcommand the program lists must have its own section.
for cmd in $("$meshlm" --help | sed -n '/^Subcommands:/,$p' | awk 'NR>1 {print $1}'); do
  grep -q "^## \`meshlm $cmd\`" "$doc" || { echo "docs/CLI.md has no section for meshlm $cmd"; status=1; }
done
# The synopsis at the top of docs/CLI.md names every option each command's --help lists.
synopsis=$(awk 'NR==1,/^meshlm --version$/' "$doc")
for cmd in prepare train eval generate bench supervise; do
  lines=$(awk -v c="$cmd" '/^meshlm /{on = ($2 == c)} on' <<< "$synopsis")
  for opt in $("$meshlm" $cmd --help | grep -oE '^  (-h,)?--[a-z0-9-]+' | sed 's/^ *//; s/^-h,//'); do
    [ "$opt" = "--help" ] && continue
    grep -qE -- "${opt}([^a-z0-9-]|$)" <<< "$lines" || { echo "docs/CLI.md's synopsis of meshlm $cmd lacks $opt"; status=1; }
  done
done
exit $status
