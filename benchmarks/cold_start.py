"""Time to the answer, cold: whole scripts in fresh processes, jitgrad against autograd.

    python -m benchmarks.cold_start [--repeats N] [--only NAME,...]

Each cell is the wall time of `python -c <script>` (interpreter start, imports, tracing,
compiling or interpreting, every call), median of N fresh processes.  jitgrad runs with an empty
kernel cache (a new temporary directory per process) unless the row says warm, in two modes:
its default, "auto" (the interpreted tier first, compiled once interpreting has taken
$JITGRAD_TIER_SECONDS), and "compile" (compile at the first call).  The workloads are issue 9's:

- `softmax-200`, `softmax-20`: softmax regression (N=400, D=20, K=5), 200 or 20 steps of
  gradient descent on value_and_grad;
- `sizes-10..20`: value_and_grad of a small loss at n = 10, 11, ..., 20, one call each;
- `logreg-warm`: a new process with a warm disk cache: import, then the first gradient of the
  logistic-regression loss (20000 x 100).

jitgrad's bytecode is written first (`run.compile_bytecode`), as installing a wheel does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from .run import compile_bytecode, environment

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOFTMAX = """
import numpy
{imports}
rng = numpy.random.default_rng(0)
N, D, K = 400, 20, 5
X = rng.standard_normal((N, D))
Y = numpy.eye(K)[rng.integers(0, K, N)]

def loss(W):
    z = np.dot(X, W)
    z = z - np.max(z, axis=1, keepdims=True)
    return -np.sum(Y * (z - np.log(np.sum(np.exp(z), axis=1, keepdims=True)))) / N

W = numpy.zeros((D, K))
step = value_and_grad(loss)
for _ in range({steps}):
    value, g = step(W)
    W = W - 0.5 * g
print(repr(float(value)))
"""

SIZES = """
import numpy
{imports}

def loss(x):
    return np.sum(np.tanh(x) ** 2 + 0.5 * x ** 4) / x.shape[0]

total = 0.0
for n in range(10, 21):
    value, g = value_and_grad(loss)(numpy.linspace(-1.0, 1.0, n))
    total += float(value) + float(numpy.sum(g))
print(repr(total))
"""

LOGREG = """
import numpy
{imports}
rng = numpy.random.default_rng(0)
inputs = rng.standard_normal((20000, 100))
targets = rng.random(20000) > 0.5

def loss(weights):
    preds = 0.5 * (np.tanh(np.dot(inputs, weights) / 2.0) + 1.0)
    label_probabilities = preds * targets + (1 - preds) * (1 - targets)
    return -np.sum(np.log(label_probabilities))

value, g = value_and_grad(loss)(numpy.zeros(100))
print(repr(float(value)))
"""

IMPORTS = {
    "autograd": "import autograd.numpy as np\nfrom autograd import value_and_grad",
    "jitgrad": "import jitgrad.numpy as np\nfrom jitgrad import value_and_grad",
}

WORKLOADS = {
    "softmax-200": (SOFTMAX, {"steps": 200}, False),
    "softmax-20": (SOFTMAX, {"steps": 20}, False),
    "sizes-10..20": (SIZES, {}, False),
    "logreg-warm": (LOGREG, {}, True),
}

CONTENDERS = [("autograd", "autograd", None), ("jitgrad (auto)", "jitgrad", "auto"),
              ("jitgrad (compile)", "jitgrad", "compile")]


def run_script(script: str, mode: str | None, cache: str | None) -> tuple[float, str]:
    env = dict(os.environ)
    env.pop("JITGRAD_EXECUTION", None)
    if mode is not None:
        env["JITGRAD_EXECUTION"] = mode
    if cache is not None:
        env["JITGRAD_CACHE_DIR"] = cache
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + ([env["PYTHONPATH"]]
                                                       if env.get("PYTHONPATH") else []))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return elapsed, done.stdout.strip()


def measure(name, library, mode, workload, repeats):
    template, params, warm = WORKLOADS[workload]
    script = textwrap.dedent(template.format(imports=IMPORTS[library], **params))
    times, answers = [], set()
    with tempfile.TemporaryDirectory(prefix="jitgrad-cold-") as root:
        if warm and library == "jitgrad":
            run_script(script, "compile", os.path.join(root, "warm"))  # fills the cache
        for k in range(repeats):
            cache = os.path.join(root, "warm" if warm else f"cold{k}")
            elapsed, answer = run_script(script, mode, cache if library == "jitgrad" else None)
            times.append(elapsed)
            answers.add(answer)
    return statistics.median(times), answers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    compile_bytecode()
    load_before = os.getloadavg()
    rows = []
    for workload in args.only.split(","):
        cells, answers = [], {}
        for name, library, mode in CONTENDERS:
            try:
                seconds, got = measure(name, library, mode, workload, args.repeats)
                cells.append(f"{seconds:.2f} s")
                answers[name] = got
            except Exception as e:  # a contender that fails shows why
                cells.append(f"error: {e}"[:60])
        values = {float(a) for got in answers.values() for a in got}
        spread = (max(values) - min(values)) / max(abs(v) for v in values) if values else 0.0
        rows.append((workload, cells, spread))
        print(f"[{workload}] " + ", ".join(f"{n}: {c}" for (n, _, _), c in zip(CONTENDERS, cells)),
              flush=True)
    print()
    print("| workload | " + " | ".join(n for n, _, _ in CONTENDERS) + " | answers agree to |")
    print("|---" * (len(CONTENDERS) + 2) + "|")
    for workload, cells, spread in rows:
        print(f"| {workload} | " + " | ".join(cells) + f" | {spread:.1e} |")
    print()
    print(f"Whole-script wall time, median of {args.repeats} fresh processes; jitgrad's kernel "
          f"cache empty at each start (logreg-warm: filled by a run before).")
    env = environment()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"jitgrad {env.get('jitgrad git', '?')}, autograd {env.get('autograd', '-')}, "
          f"numba {env.get('numba', '?')}; load average before {load_before[0]:.2f}, after "
          f"{load} (1, 5, 15 min; a busy machine slows every cell)")


if __name__ == "__main__":
    main()
