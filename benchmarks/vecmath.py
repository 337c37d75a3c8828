"""jitgrad.vecmath's vectorisable exp, log, sin, ... against libm and NumPy: ns per element.

    python -m benchmarks.vecmath [--n 1000000] [--repeats 20]

For each function, on n float64 elements, the best of `repeats` runs of:

- **libm loop**: a Numba loop `out[i] = np.exp(x[i])`, which calls the scalar libm function (and
  so stays scalar: no SVML in llvmlite);
- **vecmath loop**: the same loop calling `jitgrad.vecmath.exp`, which LLVM inlines and
  vectorises (with the 256-bit vectors LLVM prefers on AVX-512 machines);
- **vecmath, 512-bit**: that loop with LLVM's "prefer-vector-width"="512" (a function attribute a
  kernel could carry; measured here, not set by jitgrad);
- **NumPy**: the ufunc, into a preallocated output (sigmoid: `1 / (1 + np.exp(-x))`);

pow likewise, on pairs (x, y): its libm loop `out[i] = x[i] ** y[i]` (libm's pow), its NumPy
`np.power`.  Then the chain `sin(x) * exp(x) + log1p(x * x)` each way, and each function's
maximum error in ulp against NumPy (sigmoid: against 80-bit long double) on n random points, half
over the whole float64 range (log-uniform, both signs), half over the timed inputs (pow: half
with x log-uniform over the positive range and y such that y log(x) is uniform over [-746, 710],
results from below the denormals to beyond overflow).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy

_INPUTS = {  # name: (timed inputs, as text; a function of (rng, n))
    "exp": ("U(-10, 10)", lambda rng, n: rng.uniform(-10, 10, n)),
    "expm1": ("U(-10, 10)", lambda rng, n: rng.uniform(-10, 10, n)),
    "log": ("logU(1e-3, 1e3)", lambda rng, n: numpy.exp(rng.uniform(-6.9, 6.9, n))),
    "log1p": ("logU(1e-3, 1e3)", lambda rng, n: numpy.exp(rng.uniform(-6.9, 6.9, n))),
    "sin": ("U(-100, 100)", lambda rng, n: rng.uniform(-100, 100, n)),
    "cos": ("U(-100, 100)", lambda rng, n: rng.uniform(-100, 100, n)),
    "tanh": ("U(-5, 5)", lambda rng, n: rng.uniform(-5, 5, n)),
    "sigmoid": ("U(-20, 20)", lambda rng, n: rng.uniform(-20, 20, n)),
}
_PAIRS = {  # name: (timed inputs, as text; a function of (rng, n) giving x and y)
    "pow": ("x logU(1e-3, 1e3), y U(-10, 10)",
            lambda rng, n: (numpy.exp(rng.uniform(-6.9, 6.9, n)), rng.uniform(-10, 10, n))),
}


def _numpy_sigmoid(x, out):
    numpy.negative(x, out=out)
    numpy.exp(out, out=out)
    out += 1.0
    return numpy.divide(1.0, out, out=out)


def _ufunc(name):
    if name == "sigmoid":
        return _numpy_sigmoid
    ufunc = getattr(numpy, name)
    return lambda x, out: ufunc(x, out=out)


def _loops(numba, vm):
    """name: (libm loop, vecmath loop, vecmath loop with 512-bit vectors, NumPy)."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def wide(typingctx):
        def codegen(context, builder, sig, args):
            # llvmlite knows no string attributes; added to the set directly, it prints as is
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            return context.get_dummy_value()

        return types.none(), codegen

    def loop(f):
        @numba.njit(error_model="numpy")
        def run(x, out):
            for i in range(x.size):
                out[i] = f(x[i])

        return run

    def loop512(f):
        @numba.njit(error_model="numpy")
        def run(x, out):
            wide()
            for i in range(x.size):
                out[i] = f(x[i])

        return run

    @numba.njit
    def libm_sigmoid(x):
        return 1.0 / (1.0 + numpy.exp(-x))

    def loop2(f):
        @numba.njit(error_model="numpy")
        def run(x, y, out):
            for i in range(x.size):
                out[i] = f(x[i], y[i])

        return run

    def loop2_512(f):
        @numba.njit(error_model="numpy")
        def run(x, y, out):
            wide()
            for i in range(x.size):
                out[i] = f(x[i], y[i])

        return run

    @numba.njit
    def libm_pow(x, y):
        return x**y  # llvm.pow: a call of libm's pow

    out = {}
    for name in _INPUTS:
        libm = libm_sigmoid if name == "sigmoid" else getattr(numpy, name)
        out[name] = (loop(libm), loop(getattr(vm, name)), loop512(getattr(vm, name)),
                     _ufunc(name))
    out["pow"] = (loop2(libm_pow), loop2(vm.pow), loop2_512(vm.pow),
                  lambda x, y, out: numpy.power(x, y, out=out))

    @numba.njit
    def chain_libm(x, out):
        for i in range(x.size):
            out[i] = numpy.sin(x[i]) * numpy.exp(x[i]) + numpy.log1p(x[i] * x[i])

    @numba.njit
    def chain_vecmath(x, out):
        for i in range(x.size):
            out[i] = vm.sin(x[i]) * vm.exp(x[i]) + vm.log1p(x[i] * x[i])

    @numba.njit
    def chain_vecmath512(x, out):
        wide()
        for i in range(x.size):
            out[i] = vm.sin(x[i]) * vm.exp(x[i]) + vm.log1p(x[i] * x[i])

    def chain_numpy(x, out):
        numpy.add(numpy.sin(x) * numpy.exp(x), numpy.log1p(x * x), out=out)

    out["sin(x)*exp(x)+log1p(x*x)"] = (chain_libm, chain_vecmath, chain_vecmath512, chain_numpy)
    return out


def _best(f, args, out, repeats) -> float:
    f(*args, out)  # compiled, and the pages of out touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(*args, out)
        best = min(best, time.perf_counter() - start)
    return best / out.size * 1e9


def _ulps(a, b) -> int:
    """The largest number of float64s between a[i] and b[i] (two nans: 0)."""
    ka, kb = (numpy.where(v.view(numpy.int64) < 0, numpy.int64(-(2**63)) - v.view(numpy.int64),
                          v.view(numpy.int64)).view(numpy.uint64) for v in (a, b))
    with numpy.errstate(over="ignore"):
        d = ka - kb
        d = numpy.minimum(d, numpy.uint64(0) - d)
    d = numpy.where(numpy.isnan(a) | numpy.isnan(b), numpy.uint64(2**62), d)
    return int(numpy.where(numpy.isnan(a) & numpy.isnan(b), numpy.uint64(0), d).max())


def _max_error_pow(loop, rng, n) -> int:
    tiny, big = numpy.log(5e-324), numpy.log(1.7976931348623157e308)
    wide = numpy.exp(rng.uniform(tiny, big, n // 2))
    with numpy.errstate(divide="ignore"):
        wide_y = rng.uniform(-746.0, 710.0, n // 2) / numpy.log(wide)
    x, y = _PAIRS["pow"][1](rng, n - n // 2)
    x, y = numpy.concatenate([wide, x]), numpy.concatenate([wide_y, y])
    got = numpy.empty_like(x)
    loop(x, y, got)
    with numpy.errstate(all="ignore"):
        return _ulps(got, numpy.power(x, y))


def _max_error(name, loop, rng, n) -> int:
    tiny, big = numpy.log(5e-324), numpy.log(1.7976931348623157e308)
    wide = numpy.exp(rng.uniform(tiny, big, n // 2)) * rng.choice([-1.0, 1.0], n // 2)
    x = numpy.concatenate([wide, _INPUTS[name][1](rng, n - n // 2)])
    got = numpy.empty_like(x)
    loop(x, got)
    with numpy.errstate(all="ignore"):
        if name == "sigmoid":
            want = (1 / (1 + numpy.exp(-x.astype(numpy.longdouble)))).astype(numpy.float64)
        else:
            want = getattr(numpy, name)(x)
    return _ulps(got, want)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="elements (default 1M)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    import numba

    import jitgrad._jit
    import jitgrad.vecmath as vm

    jitgrad._jit.ready()  # vm.exp etc. become Numba dispatchers, callable from njit code
    print(f"numpy {numpy.__version__}, numba {numba.__version__}, {platform.machine()}, "
          f"{platform.processor() or platform.platform()}; n = {args.n}, best of {args.repeats}")
    print()
    print("| function | inputs | libm loop | vecmath loop | vecmath, 512-bit | NumPy "
          "| libm / vecmath | max ulp |")
    print("|---|---|---|---|---|---|---|---|")
    rng = numpy.random.default_rng(0)
    out = numpy.empty(args.n)
    for name, (libm, vec, vec512, ufunc) in _loops(numba, vm).items():
        if name in _PAIRS:
            text, make = _PAIRS[name]
            inputs = make(rng, args.n)
            error = _max_error_pow(vec, rng, args.n)
        else:
            text, make = _INPUTS.get(name, ("U(-10, 10)",
                                            lambda rng, n: rng.uniform(-10, 10, n)))
            inputs = (make(rng, args.n),)
            error = _max_error(name, vec, rng, args.n) if name in _INPUTS else "-"
        ns = [_best(f, inputs, out, args.repeats) for f in (libm, vec, vec512, ufunc)]
        cells = " | ".join(f"{t:.2f} ns" for t in ns)
        print(f"| {name} | {text} | {cells} | {ns[0] / ns[1]:.1f}x | {error} |", flush=True)
    print()
    print("max ulp: against NumPy's float64 result (sigmoid: 80-bit long double), on n points: "
          "half log-uniform over the whole float64 range, both signs (pow: x > 0, y log(x) "
          "over [-746, 710]), half like the inputs.")


if __name__ == "__main__":
    main()
