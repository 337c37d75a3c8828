"""Compiling in a background thread: does it keep the caller fast?  Issue 9 asks to measure it.

    python -m benchmarks.background_compile [--repeats N]

Numba's compiler is Python code holding the GIL most of the time, so a compile in a thread of
the caller's process shares one interpreter lock with the caller's interpreted calls.  This
measures, in fresh processes with empty kernel caches (Numba started beforehand by a tiny
kernel, so only the kernel's own compile is timed), for softmax regression's value_and_grad
(N=400, D=20, K=5, as in cold_start.py):

- `alone`: the interpreted tier's time per call with nothing else running, and the compile's
  wall time with nothing else running;
- `thread`: a thread compiles the kernel while the caller keeps calling the interpreted tier;
  the caller's time per call meanwhile, and the compile's wall time.

The slowdown of the caller's calls is what a background compile would cost the user during the
compile; the compile's own slowdown delays the switch to the fast tier.  jitgrad compiles on
the caller's thread (api.py's tiers); this benchmark is the evidence for that choice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from .run import environment

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, statistics, sys, threading, time
import numpy
import jitgrad, jitgrad.numpy as np

rng = numpy.random.default_rng(0)
N, D, K = 400, 20, 5
X = rng.standard_normal((N, D))
Y = numpy.eye(K)[rng.integers(0, K, N)]
W = numpy.zeros((D, K))

def make():
    def loss(W):
        z = np.dot(X, W)
        z = z - np.max(z, axis=1, keepdims=True)
        return -np.sum(Y * (z - np.log(np.sum(np.exp(z), axis=1, keepdims=True)))) / N
    return loss

with jitgrad.execution("compile"):  # Numba started: only the kernel's compile is timed below
    jitgrad.grad(lambda x: np.sum(x * x))(numpy.ones(2))
interpreted = jitgrad.value_and_grad(make())
with jitgrad.execution("interpret"):
    interpreted(W)

def compile_kernel(out):
    start = time.perf_counter()
    with jitgrad.execution("compile"):  # the mode is per thread
        jitgrad.value_and_grad(make())(W)
    out.append(time.perf_counter() - start)

def calls_while(alive):
    times = []
    with jitgrad.execution("interpret"):
        while alive():
            start = time.perf_counter()
            interpreted(W)
            times.append(time.perf_counter() - start)
    return times

result = {}
if sys.argv[1] == "alone":
    deadline = time.perf_counter() + 1.0
    result["call"] = statistics.median(calls_while(lambda: time.perf_counter() < deadline))
    took = []
    compile_kernel(took)
    result["compile"] = took[0]
else:
    took = []
    thread = threading.Thread(target=compile_kernel, args=(took,))
    thread.start()
    times = calls_while(thread.is_alive)
    thread.join()
    result["call"] = statistics.median(times) if times else float("nan")
    result["calls"] = len(times)
    result["compile"] = took[0]
print(json.dumps(result))
"""


def run(condition: str) -> dict:
    env = dict(os.environ)
    env.pop("JITGRAD_EXECUTION", None)
    env["JITGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="jitgrad-background-")
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + ([env["PYTHONPATH"]]
                                                       if env.get("PYTHONPATH") else []))
    done = subprocess.run([sys.executable, "-c", SCRIPT, condition], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per condition (3)")
    args = ap.parse_args(argv)
    rows = {c: [run(c) for _ in range(args.repeats)] for c in ("alone", "thread")}

    def median(condition, key):
        return statistics.median(r[key] for r in rows[condition])

    call_alone, call_thread = median("alone", "call"), median("thread", "call")
    compile_alone, compile_thread = median("alone", "compile"), median("thread", "compile")
    print("| condition | interpreted call (median) | kernel compile (wall) |")
    print("|---|---|---|")
    print(f"| alone | {call_alone * 1e3:.2f} ms | {compile_alone:.2f} s |")
    print(f"| compile in a thread, calls meanwhile | {call_thread * 1e3:.2f} ms "
          f"({call_thread / call_alone:.1f}x; {median('thread', 'calls'):.0f} calls, "
          f"{compile_thread / median('thread', 'calls') * 1e3:.2f} ms apart on average) | "
          f"{compile_thread:.2f} s ({compile_thread / compile_alone:.1f}x) |")
    print()
    print(f"softmax regression value_and_grad (N=400, D=20, K=5); median of {args.repeats} "
          f"fresh processes per condition, empty kernel caches, Numba started beforehand.")
    env = environment()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"jitgrad {env.get('jitgrad git', '?')}, numba {env.get('numba', '?')}, "
          f"{env.get('cores', '?')} cores; load average after {load} (1, 5, 15 min)")


if __name__ == "__main__":
    main()
