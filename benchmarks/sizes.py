"""Sizes as kernel arguments (the default) against sizes spelled out in the code
(`$JITGRAD_LITERAL_SIZES=1`): what one costs per call, and what the other costs in compiles.

    python -m benchmarks.sizes [--repeats N]

Both run in one process, in execution mode "compile", with a private empty kernel cache.

- **per call**: the steady-state time of `value_and_grad`, best of N rounds, for losses at tiny
  and at larger sizes.  With literal sizes LLVM knows every trip count (it may unroll a loop of
  3 completely); with lifted sizes it reads them from the kernel's `lifted` argument.
- **sweep**: one call each at n = 10, 11, ..., 20 (issue 9's workload), and minibatches of
  32, 32, 17, 50, 7 rows: how many kernels Numba compiled, and the wall time of the whole sweep
  including tracing and compiling (Numba itself already started).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("JITGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="jitgrad-sizes-"))

import numpy  # noqa: E402

import jitgrad  # noqa: E402
import jitgrad.numpy as np  # noqa: E402
from jitgrad import compile as jg_compile  # noqa: E402

from .run import environment  # noqa: E402


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp(x):
    h = np.tanh(np.outer(x, x) @ x)
    return np.sum(h * h) / x.shape[0]


def softmax(W, X, Y):
    z = X @ W
    z = z - np.max(z, axis=1, keepdims=True)
    return -np.mean(np.sum(Y * (z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))), axis=1))


def small_loss(x):
    return np.sum(np.tanh(x) ** 2 + 0.5 * x ** 4) / x.shape[0]


def _fresh(f):
    """A new function object with `f`'s code: its own kernels, traced under the current mode."""
    import types

    return types.FunctionType(f.__code__, f.__globals__, f.__name__)


def _per_call(f, args, repeats) -> float:
    vg = jitgrad.value_and_grad(_fresh(f), argnum=0)
    vg(*args)  # compile
    best = float("inf")
    for _ in range(repeats):
        number = 200
        start = time.perf_counter()
        for _ in range(number):
            vg(*args)
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def _with_sizes(literal: bool, run):
    saved = os.environ.get("JITGRAD_LITERAL_SIZES")
    os.environ["JITGRAD_LITERAL_SIZES"] = "1" if literal else "0"
    try:
        return run()
    finally:
        if saved is None:
            del os.environ["JITGRAD_LITERAL_SIZES"]
        else:
            os.environ["JITGRAD_LITERAL_SIZES"] = saved


def _sweep(calls) -> tuple[int, float]:
    """(kernels compiled, seconds) for `calls`: a list of (function, args)."""
    seen = {}
    real = jg_compile.load

    def load(source):
        kernel = real(source)
        seen[id(kernel)] = kernel
        return kernel

    jg_compile.load = load
    try:
        start = time.perf_counter()
        for f, args in calls:
            f(*args)
        elapsed = time.perf_counter() - start
    finally:
        jg_compile.load = real
    return sum(len(k.signatures) for k in seen.values()), elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = numpy.random.default_rng(0)
    X, Y = rng.standard_normal((400, 20)), numpy.eye(5)[rng.integers(0, 5, 400)]
    cases = [
        ("rosenbrock n=3", rosenbrock, (rng.uniform(-1, 1, 3),)),
        ("rosenbrock n=10", rosenbrock, (rng.uniform(-1, 1, 10),)),
        ("rosenbrock n=100k", rosenbrock, (rng.uniform(-1, 1, 100_000),)),
        ("tanh(x x^T x) n=4", mlp, (rng.uniform(-1, 1, 4),)),
        ("tanh(x x^T x) n=300", mlp, (rng.uniform(-1, 1, 300),)),
        ("softmax 400x20x5", softmax, (numpy.zeros((20, 5)), X, Y)),
    ]
    with jitgrad.execution("compile"):
        jitgrad.grad(lambda x: np.sum(x * x))(numpy.ones(2))  # Numba started
        print("| per call, steady state | lifted sizes (default) | literal sizes | ratio |")
        print("|---|---|---|---|")
        for name, f, case_args in cases:
            lifted = _with_sizes(False, lambda: _per_call(f, case_args, args.repeats))
            literal = _with_sizes(True, lambda: _per_call(f, case_args, args.repeats))
            print(f"| {name} | {lifted:.2f} µs | {literal:.2f} µs | {lifted / literal:.2f} |",
                  flush=True)
        print()

        def sweeps():
            loss, soft = jitgrad.value_and_grad(_fresh(small_loss)), \
                jitgrad.value_and_grad(_fresh(softmax))
            W = numpy.zeros((4, 3))
            batches = []
            for b in (32, 32, 17, 50, 7):
                batches.append((soft, (W, rng.standard_normal((b, 4)),
                                       numpy.eye(3)[rng.integers(0, 3, b)])))
            return {"n = 10..20": [(loss, (numpy.linspace(-1, 1, n),)) for n in range(10, 21)],
                    "minibatches 32,32,17,50,7": batches}

        print("| sweep | lifted: compiles | lifted: seconds | literal: compiles | "
              "literal: seconds |")
        print("|---|---|---|---|---|")
        lifted_sweeps = _with_sizes(False, sweeps)
        literal_sweeps = _with_sizes(True, sweeps)
        for name in lifted_sweeps:
            a = _with_sizes(False, lambda: _sweep(lifted_sweeps[name]))
            b = _with_sizes(True, lambda: _sweep(literal_sweeps[name]))
            print(f"| {name} | {a[0]} | {a[1]:.2f} s | {b[0]} | {b[1]:.2f} s |", flush=True)
    env = environment()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\njitgrad {env.get('jitgrad git', '?')}, numba {env.get('numba', '?')}, "
          f"{env.get('cpu', '?')}; load average {load}")


if __name__ == "__main__":
    main()
