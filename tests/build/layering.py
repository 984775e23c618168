#!/usr/bin/env python3
"""Fails when a layer includes a header of a layer it does not depend on.

usage: layering.py <meshlm_layers.txt> <src/meshlm>

meshlm_layers.txt is written by CMake from the layer declarations in src/meshlm/CMakeLists.txt
(one `layer: direct dependencies` line per layer). A file under src/meshlm/<layer>/ may include
"meshlm/<other>/..." only when <other> is <layer> or one of its transitive dependencies, and may
not reach another layer's directory through a relative path ("../").
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')
SOURCES = {".cpp", ".hpp", ".cu", ".cuh", ".h"}


def read_graph(path):
    graph = {}
    for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, sep, deps = line.partition(":")
        if not sep:
            sys.exit(f"{path}:{number}: expected `layer: dependencies`, got {line!r}")
        graph[name.strip()] = deps.split()
    for name, deps in graph.items():
        for dep in deps:
            if dep not in graph:
                sys.exit(f"{path}: layer {name} depends on {dep}, which is not a layer")
    return graph


def reachable(graph, name):
    seen, todo = {name}, [name]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    graph = read_graph(sys.argv[1])
    src = pathlib.Path(sys.argv[2])
    on_disk = {p.name for p in src.iterdir() if p.is_dir()}
    errors = [f"{src / d}: directory is not a declared layer" for d in sorted(on_disk - graph.keys())]
    checked = 0
    for layer in sorted(graph):
        allowed = reachable(graph, layer)
        for path in sorted((src / layer).rglob("*")):
            if path.suffix not in SOURCES or not path.is_file():
                continue
            checked += 1
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                header = m.group(1)
                target = re.match(r"meshlm/([^/]+)/", header)
                if target and target.group(1) not in allowed:
                    errors.append(f"{path}:{number}: layer {layer} includes {header}, but {target.group(1)} "
                                  f"is not below {layer} (allowed: {', '.join(sorted(allowed))})")
                elif header.startswith("../") or "/../" in header:
                    errors.append(f"{path}:{number}: relative include {header} bypasses the layer include roots")
    for e in errors:
        print(e)
    if errors:
        print(f"layering: {len(errors)} violation(s)")
        return 1
    print(f"layering: {checked} files in {len(graph)} layers follow the graph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
