#!/usr/bin/env python3
"""Fails when a ctest test does not carry exactly one tier label.

usage: tiers.py <ctest> <build dir>

The tiers (tests/CMakeLists.txt): unit, slow, mpi, reference, gpu. Reads the registered tests
with `ctest -N --show-only=json-v1`, so a test added without a tier fails here.
"""
import json
import subprocess
import sys

TIERS = {"unit", "slow", "mpi", "reference", "gpu"}


def labels_of(test):
    for prop in test.get("properties", []):
        if prop.get("name") == "LABELS":
            return list(prop.get("value", []))
    return []


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ctest, build = sys.argv[1:]
    listing = subprocess.run([ctest, "-N", "--show-only=json-v1"], cwd=build, check=True, capture_output=True,
                             text=True)
    tests = json.loads(listing.stdout)["tests"]
    errors = []
    counts = {tier: 0 for tier in sorted(TIERS)}
    for test in tests:
        tiers = [label for label in labels_of(test) if label in TIERS]
        if len(tiers) != 1:
            errors.append(f"{test['name']}: tier labels {tiers or 'none'}; expected exactly one of {sorted(TIERS)}")
        else:
            counts[tiers[0]] += 1
    for e in errors:
        print(e)
    if errors:
        print(f"tiers: {len(errors)} of {len(tests)} tests without exactly one tier")
        return 1
    print(f"tiers: {len(tests)} tests, " + ", ".join(f"{n} {tier}" for tier, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
