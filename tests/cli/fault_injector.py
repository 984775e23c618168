"""Injects faults into a supervised training job (tests/cli/supervisor.sh).

For each fault: waits until every rank of the (re)started job beats (RUN_DIR/.heartbeat) and
the job trains again (a checkpoint newer than the one it resumed from), waits a random time in
[0, WINDOW_S], and kills a random rank with SIGKILL; with --hang the last fault stops a rank
with SIGSTOP instead and times the watchdog until LOG shows "job hung". Polls every 5 ms in one
process, so that it keeps up with a fast run. Prints what it does; the last lines are
"killed: R ..." (the killed ranks) and, with --hang, "stopped: RANK PID SECONDS".

Usage: fault_injector.py RUN_DIR NPROC KILLS WINDOW_S SEED LOG [--hang]
"""
import json
import os
import random
import signal
import sys
import time

run, nproc, kills, window_s, seed, log = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                                          int(sys.argv[5]), sys.argv[6])
hang = len(sys.argv) > 7 and sys.argv[7] == "--hang"
rng = random.Random(seed)


def wait(condition, what, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    print(f"timed out waiting for {what}", flush=True)
    sys.exit(1)


def heartbeat(rank):
    try:
        with open(f"{run}/.heartbeat/rank_{rank}") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def latest():
    try:
        with open(f"{run}/checkpoints/latest") as f:
            return int(f.read().strip()[len("step_"):])
    except (OSError, ValueError):
        return 0


def new_job(dead):
    """The heartbeats of every rank when all come from processes not yet killed, else None."""
    beats = [heartbeat(r) for r in range(nproc)]
    if all(b and b["pid"] not in dead for b in beats):
        return beats
    return None


dead, killed, killed_at = set(), [], None
for k in range(kills + (1 if hang else 0)):
    rank = rng.randrange(nproc)
    beats = wait(lambda: new_job(dead), "the job to start")
    pid = beats[rank]["pid"]
    resumed = latest()
    wait(lambda: latest() > resumed, f"a checkpoint after step {resumed}")
    if killed_at is not None:
        print(f"     death to training again (detection, restart, load, {latest() - resumed} steps and their "
              f"checkpoint): {time.monotonic() - killed_at:.2f} s", flush=True)
    delay = rng.uniform(0, window_s)
    time.sleep(delay)
    if hang and k == kills:
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        print(f"     fault {k + 1}: SIGSTOP to rank {rank} (pid {pid}), {delay:.3f} s after step {latest()} was saved",
              flush=True)
        wait(lambda: "job hung" in open(log).read(), "the watchdog", 30)
        print("killed:", *killed)
        print(f"stopped: {rank} {pid} {time.monotonic() - stopped_at:.2f}")
        sys.exit(0)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    print(f"     fault {k + 1}: SIGKILL to rank {rank} (pid {pid}), {delay:.3f} s after step {latest()} was saved",
          flush=True)
    dead.update(b["pid"] for b in beats)
    killed.append(rank)
print("killed:", *killed)
