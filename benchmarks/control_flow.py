"""Control-flow benchmarks: data-dependent loops, compiled.

    python -m benchmarks.control_flow            # about a minute on 2 cores
    python -m benchmarks.control_flow --quick

1. autograd's `taylor_sine` (a Python `while` whose trip count depends on x), differentiated at
   2000 different x in [-3, 3] after one warm-up call: jitgrad (the unchanged Python function),
   autograd, and a hand-written Numba derivative of the same loop.  Reports the per-call time and
   how many traces + compiles the 2000 calls caused.
2. 100 explicit Euler steps of a small ODE, dy/dt = -k y + sin(y), loss = sum(y_100^2),
   differentiated with respect to the initial state y0 (8 values) and the parameter k: jitgrad
   with `fori_loop` (a compiled loop), jitgrad with a Python `for` loop (unrolled into the trace),
   autograd, `jax.jit(jax.value_and_grad)` with `lax.fori_loop`, and hand-written Numba
   (forward loop, then the adjoint loop backwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numba
import numpy

XS = numpy.linspace(-3.0, 3.0, 2000)
STEPS, H = 100, 0.01
Y0 = numpy.linspace(0.5, 2.0, 8)
K = 0.7


def make_taylor_sine(np):
    def taylor_sine(x):  # Taylor approximation to sine function
        ans = currterm = x
        i = 0
        while np.abs(currterm) > 0.001:
            currterm = -currterm * x**2 / ((2 * i + 3) * (2 * i + 2))
            ans = ans + currterm
            i += 1
        return ans
    return taylor_sine


@numba.njit(error_model="numpy")
def taylor_sine_grad_numba(x):
    """The same loop, differentiated by hand (forward mode: x is a scalar)."""
    ans = term = x
    d_ans = d_term = 1.0
    i = 0
    while abs(term) > 0.001:
        c = (2 * i + 3) * (2 * i + 2)
        d_term = -(d_term * x * x + term * 2.0 * x) / c
        term = -term * x * x / c
        ans += term
        d_ans += d_term
        i += 1
    return d_ans


def make_euler(np, loop):
    def euler(y0, k):
        def step(i, y):
            return y + H * (-k * y + np.sin(y))
        return np.sum(loop(step, y0) ** 2)
    return euler


def python_loop(step, y):
    for i in range(STEPS):
        y = step(i, y)
    return y


@numba.njit(error_model="numpy")
def euler_value_and_grad_numba(y0, k):
    n = y0.shape[0]
    ys = numpy.empty((STEPS + 1, n))
    ys[0] = y0
    for s in range(STEPS):
        for j in range(n):
            y = ys[s, j]
            ys[s + 1, j] = y + H * (-k * y + numpy.sin(y))
    value = 0.0
    g = numpy.empty(n)
    for j in range(n):
        value += ys[STEPS, j] ** 2
        g[j] = 2.0 * ys[STEPS, j]
    gk = 0.0
    for s in range(STEPS - 1, -1, -1):
        for j in range(n):
            y = ys[s, j]
            gk += g[j] * H * -y
            g[j] *= 1.0 + H * (-k + numpy.cos(y))
    return value, g, gk


def per_call_us(call, args_list, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for args in args_list:
            call(*args)
        best = min(best, (time.perf_counter() - t) / len(args_list))
    return best * 1e6


def first_call_s(make_call, args):
    t = time.perf_counter()
    call = make_call()
    call(*args)
    return call, time.perf_counter() - t


def taylor_rows(repeats):
    import jitgrad
    import jitgrad.numpy as jnp
    from jitgrad import api

    builds = []
    original = api._GradFunction._build

    def counting(self, *a, **k):
        builds.append(self.name)
        return original(self, *a, **k)

    api._GradFunction._build = counting
    try:
        ours, first = first_call_s(lambda: jitgrad.grad(make_taylor_sine(jnp)), (0.3,))
        args = [(x,) for x in XS]
        rows = [("jitgrad grad(taylor_sine)", per_call_us(ours, args, repeats), first)]
        compiles = len(builds)
    finally:
        api._GradFunction._build = original
    _, first = first_call_s(lambda: taylor_sine_grad_numba, (0.3,))  # its Numba compile
    check = max(abs(ours(x) - taylor_sine_grad_numba(x)) for x in XS)
    rows.append(("hand-written Numba", per_call_us(taylor_sine_grad_numba, args, repeats), first))
    try:
        import autograd
        import autograd.numpy as anp

        ag = autograd.grad(make_taylor_sine(anp))
        rows.append(("autograd", per_call_us(ag, args[::10], 1), 0.0))
    except ImportError:
        rows.append(("autograd", None, None))
    return rows, compiles, check


def euler_rows(repeats):
    import jitgrad
    import jitgrad.numpy as jnp

    args = [(Y0, K)] * 200
    rows = []
    _, first = first_call_s(lambda: euler_value_and_grad_numba, (Y0, K))  # its Numba compile
    ref = euler_value_and_grad_numba(Y0, K)
    rows.append(("hand-written Numba", per_call_us(euler_value_and_grad_numba, args, repeats),
                 first, 0.0))

    def check(out):
        v, (gy, gk) = out
        return max(abs(v - ref[0]) / abs(ref[0]), numpy.max(numpy.abs(gy - ref[1])),
                   abs(gk - ref[2]))

    def fori(step, y):
        return jitgrad.fori_loop(0, STEPS, step, y)

    for name, loop in [("jitgrad fori_loop", fori), ("jitgrad Python for (unrolled)", python_loop)]:
        call, first = first_call_s(
            lambda loop=loop: jitgrad.value_and_grad(make_euler(jnp, loop), (0, 1)), (Y0, K))
        rows.append((name, per_call_us(call, args, repeats), first, check(call(Y0, K))))
    try:
        import autograd
        import autograd.numpy as anp

        ag = autograd.value_and_grad(make_euler(anp, python_loop), (0, 1))
        rows.append(("autograd", per_call_us(ag, args[:20], 1), 0.0, check(ag(Y0, K))))
    except ImportError:
        rows.append(("autograd", None, None, None))
    try:
        import jax
        import jax.numpy as jnp_

        jax.config.update("jax_enable_x64", True)

        def jfori(step, y):
            return jax.lax.fori_loop(0, STEPS, step, y)

        vg = jax.jit(jax.value_and_grad(make_euler(jnp_, jfori), (0, 1)))
        y0, k = jax.device_put(Y0), jax.device_put(K)

        def jcall(y0, k):
            out = vg(y0, k)
            jax.block_until_ready(out)
            return out

        t = time.perf_counter()
        out = jcall(y0, k)
        first = time.perf_counter() - t
        v, (gy, gk) = out
        err = check((float(v), (numpy.asarray(gy), float(gk))))
        rows.append(("jax.jit(value_and_grad), lax.fori_loop",
                     per_call_us(jcall, [(y0, k)] * 200, repeats), first, err))
    except ImportError:
        rows.append(("jax", None, None, None))
    return rows


def fmt(x, unit="µs"):
    if x is None:
        return "-"
    return f"{x:,.2f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else 5
    # First calls are measured cold: an empty kernel cache, and Numba's one-time start-up (its
    # first compile in a process) paid beforehand and reported apart.
    cache = tempfile.mkdtemp(prefix="jitgrad-bench-")
    os.environ["JITGRAD_CACHE_DIR"] = cache
    t = time.perf_counter()
    numba.njit(lambda v: v + 1.0)(1.0)
    print(f"Numba start-up (first compile in this process): {time.perf_counter() - t:.2f} s; "
          f"first calls below are cold (empty kernel cache {cache})\n")

    rows, compiles, err = taylor_rows(repeats)
    hand = rows[1][1]
    print(f"1. grad(taylor_sine) at {len(XS)} different x in [-3, 3] (per call, best of {repeats})")
    print(f"   {'contender':40s} {'per call':>12s} {'vs hand':>9s} {'first call':>11s}")
    for name, us, first in rows:
        ratio = f"{us / hand:.2f}x" if us else "-"
        print(f"   {name:40s} {fmt(us):>12s} {ratio:>9s} {fmt(first, 's'):>11s}")
    ours, ag = rows[0][1], rows[2][1]
    if ag:
        print(f"   jitgrad is {ag / ours:.0f}x faster than autograd per call")
    print(f"   traces + compiles caused by the {len(XS) + 1} jitgrad calls: {compiles}; "
          f"largest difference from the hand-written derivative: {err:.1e}")
    print()
    rows = euler_rows(repeats)
    hand = rows[0][1]
    print(f"2. value_and_grad of {STEPS} Euler steps of dy/dt = -k y + sin(y), y of {len(Y0)}, "
          f"w.r.t. (y0, k)")
    print(f"   {'contender':40s} {'per call':>12s} {'vs hand':>9s} {'first call':>11s} "
          f"{'max error':>10s}")
    for name, us, first, e in rows:
        ratio = f"{us / hand:.2f}x" if us else "-"
        err_text = "-" if e is None else f"{e:.1e}"
        print(f"   {name:40s} {fmt(us):>12s} {ratio:>9s} {fmt(first, 's'):>11s} {err_text:>10s}")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
