#!/usr/bin/env python3
"""Runs the meshlm commands that README.md and docs/*.md show, so the docs cannot drift from
the program: every command line in a ```sh block (and every `$ meshlm ...` transcript line)
must exit 0.

Each document runs in a scratch directory of its own, laid out like the source tree's root:
configs/ (the project's), build/bin/meshlm, corpus.txt (the project's own docs, a ~130 kB
text) and data/corpus (prepared as the README's quick start does). `build/bin/meshlm` there is
a wrapper that shrinks what a command costs but not what it says: `train` gets a two-step run
of a 2-layer, 64-wide model (`--section.key value` overrides appended after the documented
ones) and `bench` one timed step. Lines that are templates (`...`, `hosts`, placeholders in
capitals) and GPU lines (`--device cuda`, when the machine has none) are reported and skipped.

Usage: doc_commands.py MESHLM_BINARY SOURCE_DIR
"""
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time

MESHLM, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
DOCS = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(SOURCE, "docs")) if f.endswith(".md"))

# Appended by the wrapper. A run started --init-from or --resume keeps its model's shape.
SHRINK_MODEL = "--model.n_layer 2 --model.n_embd 64 --model.n_head 4 --model.n_positions 64"
SHRINK_TRAIN = ("--train.steps 2 --train.micro_batch 2 --train.block_size 0 --train.warmup_steps 0 "
                "--train.eval_every 0 --train.eval_tokens 256 --train.threads 1")
WRAPPER = f"""#!/usr/bin/env bash
# Shrinks documented commands to a few seconds each (see tests/docs/doc_commands.py).
real={shlex.quote(MESHLM)}
if [ -n "${{MESHLM_DOC_SHRUNK:-}}" ]; then exec "$real" "$@"; fi
export MESHLM_DOC_SHRUNK=1
case "${{1:-}}" in
  train)
    model="{SHRINK_MODEL}"
    for a in "$@"; do case "$a" in --init-from|--resume) model="";; esac; done
    exec "$real" "$@" $model {SHRINK_TRAIN};;
  bench)  # one timed step, none untimed, whatever the documented command asks
    args=(); skip=""
    for a in "$@"; do
      if [ -n "$skip" ]; then skip=""; continue; fi
      case "$a" in --steps|--warmup) skip=1;; --steps=*|--warmup=*) ;; *) args+=("$a");; esac
    done
    exec "$real" "${{args[@]}}" --steps 1 --warmup 0 {SHRINK_MODEL} --train.micro_batch 2;;
  *) exec "$real" "$@";;
esac
"""

MESHLM_LINE = re.compile(r"^(\$ )?(\w+=\S+ )*(\$M|build/bin/meshlm|meshlm|mpirun|build-gpu/bin/meshlm)\b")
# A template names what the user fills in: an ellipsis, a hostfile, or a capitalised placeholder.
TEMPLATE = re.compile(r"\.\.\.|--hostfile|\b(FILE|DIR|DATA_DIR|RUN_DIR|PATH|NAME|TEXT)\b|\b[NKTPS]\b\]|\|\S+\]")


def has_gpu():
    return shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0


def blocks(path):
    """(first line number, language, text) of every fenced block, continuation lines joined."""
    out, lang, start, body = [], None, 0, []
    for number, line in enumerate(open(os.path.join(SOURCE, path), encoding="utf-8"), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), number + 1, []
            else:
                out.append((start, lang, "".join(body).replace("\\\n", " ")))
                lang = None
        elif lang is not None:
            body.append(line)
    return out


def commands(path):
    """(line number, assignments before it in its block, command) for each documented command."""
    for start, lang, text in blocks(path):
        assignments = []
        for offset, raw in enumerate(text.split("\n")):
            line = raw.split("  #")[0].strip()
            if re.match(r"^[A-Z]\w*=\S+$", line):
                assignments.append(line)
                continue
            if lang == "sh" and MESHLM_LINE.match(line) and not line.startswith("$ "):
                yield start + offset, list(assignments), line
            elif line.startswith("$ meshlm ") or line.startswith("$ build/bin/meshlm "):
                yield start + offset, list(assignments), line[2:]


def scratch(root, name, data_from):
    d = os.path.join(root, name.replace("/", "_"))
    os.makedirs(os.path.join(d, "build", "bin"))
    os.symlink(os.path.join(SOURCE, "configs"), os.path.join(d, "configs"))
    wrapper = os.path.join(d, "build", "bin", "meshlm")
    with open(wrapper, "w") as f:
        f.write(WRAPPER)
    os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IEXEC)
    with open(os.path.join(d, "corpus.txt"), "w", encoding="utf-8") as out:
        for doc in DOCS:
            out.write(open(os.path.join(SOURCE, doc), encoding="utf-8").read())
    if data_from:
        shutil.copytree(os.path.join(data_from, "data"), os.path.join(d, "data"))
    return d


def main():
    gpu = has_gpu()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    root = tempfile.mkdtemp(prefix="meshlm-doc-")
    ran = skipped = 0
    failures = []
    readme_dir = None
    try:
        for doc in DOCS:
            work = None
            for number, assignments, command in commands(doc):
                where = f"{doc}:{number}"
                if TEMPLATE.search(command):
                    print(f"skip (template)  {where}: {command}")
                    skipped += 1
                    continue
                if "--device cuda" in command and not gpu:
                    print(f"skip (no GPU)    {where}: {command}")
                    skipped += 1
                    continue
                if work is None:
                    work = scratch(root, doc, readme_dir)
                    if doc == "README.md":
                        readme_dir = work
                env["PATH"] = os.path.join(work, "build", "bin") + os.pathsep + os.environ["PATH"]
                script = "\n".join(assignments + [command])
                t0 = time.time()
                r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                                   timeout=300)
                ran += 1
                status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
                print(f"{status:<16} {where}: {command}  [{time.time() - t0:.1f} s]")
                if r.returncode != 0:
                    failures.append(where)
                    print("  stdout: " + r.stdout[-1500:].replace("\n", "\n  "))
                    print("  stderr: " + r.stderr[-1500:].replace("\n", "\n  "))
            if doc == "README.md" and readme_dir is None:
                print("FAIL: README.md runs no command (the quick start prepares data/corpus for the others)")
                return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{ran} documented commands ran, {len(failures)} failed, {skipped} skipped")
    if ran < 10:
        print("FAIL: fewer than 10 documented commands ran; the extraction is broken")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
