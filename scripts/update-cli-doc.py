#!/usr/bin/env python3
"""Refreshes docs/CLI.md from the program: the fenced block after each help heading
("## `meshlm` (help)" or "### help" inside "## `meshlm CMD`") becomes `meshlm [CMD] --help`,
and the table under "## Config keys" becomes `meshlm keys`.
Usage: scripts/update-cli-doc.py [build/bin/meshlm]"""
import subprocess, sys
from pathlib import Path

meshlm = sys.argv[1] if len(sys.argv) > 1 else "build/bin/meshlm"
doc = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
run = lambda *a: subprocess.run([meshlm, *a], check=True, capture_output=True, text=True).stdout.rstrip("\n").split("\n")

out, lines, i = [], doc.read_text().split("\n"), 0
command, want_help = None, False
while i < len(lines):
    line = lines[i]
    if line.startswith("## "):
        command = line.split("`")[1].split()[1:] if line.startswith("## `meshlm") else None
        want_help = line.endswith("(help)")
        if line == "## Config keys":  # keep the prose, replace the table
            out.append(line); i += 1
            while i < len(lines) and not lines[i].startswith("| key |"): out.append(lines[i]); i += 1
            while i < len(lines) and lines[i].startswith("|"): i += 1
            out += run("keys"); continue
    if line == "### help": want_help = True
    if want_help and line == "```" and command is not None:
        out += ["```", *run(*command, "--help"), "```"]
        i += 1
        while lines[i] != "```": i += 1
        i += 1; want_help = False; continue
    out.append(line); i += 1
doc.write_text("\n".join(out))
