"""jitgrad.vecmath against NumPy: millions of points over each function's whole float64 domain
and dense at its hard spots, within 2 ulp (and within 2 ulp of 80-bit `np.longdouble`, the
"true" value); NumPy's result exactly at the edge values (the sign of zero, nan, inf,
denormals, the overflow thresholds); random floats from hypothesis; and the loops that call
them, from this module, vectorised.  pow likewise, on (x, y) pairs."""

import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitgrad._jit
import jitgrad.vecmath as vm

FUNCTIONS = ["exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "sigmoid"]
ULPS = 2

TINY = 5e-324  # the smallest denormal
MAX_DENORMAL = 2.225073858507201e-308
MIN_NORMAL = 2.2250738585072014e-308
MAX = 1.7976931348623157e308


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_result(name, x):
    """NumPy's float64 result (sigmoid: none; its formula in 80 bits)."""
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return true_result(name, x)
        return getattr(np, name)(np.asarray(x, np.float64))


def true_result(name, x):
    """The result in 80-bit long double, rounded to float64: within 2**-64 of the exact value,
    so rounded correctly but for rare ties."""
    with np.errstate(all="ignore"):
        xl = np.asarray(x, np.float64).astype(np.longdouble)
        y = _sigmoid(xl) if name == "sigmoid" else getattr(np, name)(xl)
        return y.astype(np.float64)


def ulps(a, b):
    """The number of float64s between a and b (0 for two nans, 2**62 for a nan and a number);
    +0 and -0 are the same here (the edge tests check signs)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ia, ib = a.view(np.int64), b.view(np.int64)
    # Negative floats' bits count the wrong way: reflect them, so that keys order as floats.
    ka = np.where(ia < 0, np.int64(-(2**63)) - ia, ia).view(np.uint64)
    kb = np.where(ib < 0, np.int64(-(2**63)) - ib, ib).view(np.uint64)
    with np.errstate(over="ignore"):
        d = ka - kb  # modulo 2**64: the nearer way round is the distance (a big one stays big)
        d = np.minimum(d, np.uint64(0) - d)
    d = np.where(np.isnan(a) | np.isnan(b), np.uint64(2**62), d)
    return np.where(np.isnan(a) & np.isnan(b), np.uint64(0), d)


def _loop(f):
    @numba.njit
    def loop(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = f(x[i])
        return out

    return loop


def _loop2(f):
    @numba.njit
    def loop(x, y):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = f(x[i], y[i])
        return out

    return loop


@pytest.fixture(scope="module")
def loops():
    jitgrad._jit.ready()  # vm.exp etc. are Numba dispatchers from here on
    return {**{name: _loop(getattr(vm, name)) for name in FUNCTIONS}, "pow": _loop2(vm.pow)}


# ------------------------------------------------------------------------------------------------
# The points: log-uniform over the whole range, both signs, and dense at each hard spot
# ------------------------------------------------------------------------------------------------

_RNG = np.random.default_rng(20240607)


def _log_uniform(lo, hi, n, signed=True):
    x = np.exp(_RNG.uniform(np.log(lo), np.log(hi), n))
    return x * _RNG.choice([-1.0, 1.0], n) if signed else x


def _uniform(lo, hi, n):
    return _RNG.uniform(lo, hi, n)


def _around(centres, ulps_each_way=4):
    """Each centre and its neighbours up to `ulps_each_way` floats either side."""
    centres = np.asarray(centres, np.float64)
    out = [centres]
    up = down = centres
    for _ in range(ulps_each_way):
        with np.errstate(over="ignore"):  # MAX's neighbour above is inf
            up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        out += [up, down]
    return np.concatenate(out)


def _mantissa_edges(n):
    """Points near sqrt(1/2) and sqrt(2) (where log's reduction switches) times powers of 2."""
    scale = 2.0 ** _RNG.integers(-1070, 1020, n)
    return np.concatenate([_uniform(0.70, 0.72, n) * scale, _uniform(1.40, 1.43, n) * scale])


WIDE = _log_uniform(TINY, MAX, 400_000)  # the whole float64 range, both signs

POINTS = {
    "exp": [_log_uniform(1e-20, 746, 300_000), _uniform(-746, 710, 300_000),
            _uniform(709.7, 709.8, 50_000), _uniform(-745.2, -708, 200_000),
            _around([709.782712893384, -745.1332191019411, -708.3964185322641, 0.0])],
    "expm1": [_log_uniform(1e-20, 710, 300_000), _uniform(-1.5, 1.5, 300_000),
              _uniform(0.3, 0.4, 100_000), _uniform(-0.4, -0.3, 100_000),
              _uniform(-50, -30, 50_000), _uniform(709.7, 709.8, 50_000),
              _around([709.782712893384, 0.0])],
    "log": [_log_uniform(TINY, MAX, 300_000, signed=False), 1 + _log_uniform(1e-16, 0.5, 300_000),
            _log_uniform(TINY, MIN_NORMAL, 100_000, signed=False), _mantissa_edges(100_000),
            _around([1.0, MIN_NORMAL, MAX])],
    "log1p": [_log_uniform(1e-20, 1e3, 300_000), -1 + _log_uniform(1e-16, 1, 300_000),
              _uniform(-1, 1, 300_000), _uniform(-0.3, 0.42, 100_000),
              _around([-1.0, 0.0, 1.0, MAX])],
    "sin": [_log_uniform(1e-3, 2**20, 300_000), _uniform(-10, 10, 200_000),
            # the multiples of pi/2 below the Cody-Waite bound, and their neighbours
            _around(np.arange(-667_000, 667_000, 7) * (np.pi / 2), 2),
            _uniform(2**20 - 100, 2**20 + 100, 10_000), _around([2.0**20, -(2.0**20), 1e22]),
            # the doubles below 2**20 nearest to a multiple of pi/2 (abs(sin) or abs(cos) of
            # them is 1.2e-18 and up)
            _around([45.553093477052, 91.106186954104, 182.212373908208, 364.424747816416,
                     728.849495632832, 1457.698991265664], 2)],
    "tanh": [_log_uniform(1e-20, 25, 300_000), _uniform(-3, 3, 300_000),
             _uniform(0.5, 0.6, 100_000), _uniform(0.9, 1.1, 100_000), _uniform(18, 23, 50_000),
             _around([0.55, -0.55, 22.0, 1.0])],
    "sigmoid": [_log_uniform(1e-20, 800, 300_000), _uniform(-40, 40, 300_000),
                _uniform(-746, -700, 100_000), _around([-745.1332191019411, 0.0, 36.7])],
}
POINTS["cos"] = POINTS["sin"]


def points(name):
    return np.concatenate([WIDE, *POINTS[name]])


# ------------------------------------------------------------------------------------------------
# Accuracy
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_within_2_ulp(loops, name):
    x = points(name)
    got = loops[name](x)
    for reference in (numpy_result, true_result):
        want = reference(name, x)
        err = ulps(got, want)
        worst = int(np.argmax(err))
        assert err[worst] <= ULPS, (
            f"{name}({x[worst]!r}) = {got[worst]!r}, {reference.__name__} {want[worst]!r}: "
            f"{err[worst]} ulp")


EDGES = [0.0, -0.0, TINY, -TINY, MAX_DENORMAL, -MAX_DENORMAL, MIN_NORMAL, -MIN_NORMAL, MAX, -MAX,
         np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5]
EDGES_OF = {
    # the last finite, first infinite, smallest denormal, first 0 results, and the first denormal
    "exp": [709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412,
            -708.3964185322641, -740.0, 710.0, -746.0, 1e-300, -1e-300],
    "expm1": [709.782712893384, 709.7827128933841, -40.0, -45.0, -46.0, 1e-17, -1e-17, 1e-300],
    "log": [np.nextafter(1.0, 0.0), np.nextafter(1.0, 2.0), 1e-310, 2.0, 4.0],
    "log1p": [-1.0000000000000002, -0.9999999999999999, -2.0, 1e-300, -1e-300, 1e-17],
    "sin": [2.0**20, -(2.0**20), np.nextafter(2.0**20, 0.0), 1e22, 1e-8, -1e-300],
    "tanh": [19.1, 22.0, 22.000000001, 710.0, -710.0, 1e-9, -1e-300],
}
EDGES_OF["cos"] = EDGES_OF["sin"]
SIGMOID_EDGES = [(0.0, 0.5), (-0.0, 0.5), (np.inf, 1.0), (-np.inf, 0.0), (np.nan, np.nan),
                 (40.0, 1.0), (37.0, 0.9999999999999999), (-745.0, TINY), (-746.0, 0.0),
                 (MAX, 1.0), (-MAX, 0.0), (TINY, 0.5)]


def _same(a, b) -> bool:
    """Equal floats, with the same sign (of a zero too), or both nan."""
    return bool(np.isnan(a) and np.isnan(b) or a == b and np.signbit(a) == np.signbit(b))


@pytest.mark.parametrize("name", [f for f in FUNCTIONS if f != "sigmoid"])
def test_edge_values_exactly_as_numpy(loops, name):
    x = np.array(EDGES + EDGES_OF.get(name, []))
    want = numpy_result(name, x)
    for got in (loops[name](x), [getattr(vm, name)(v) for v in x]):  # vector and scalar code
        bad = [(v, g, w) for v, g, w in zip(x, got, want) if not _same(g, w)]
        assert not bad, f"{name}: (x, ours, NumPy's) {bad}"


def test_sigmoid_edge_values(loops):
    x, want = np.array(SIGMOID_EDGES).T
    for got in (loops["sigmoid"](x), [vm.sigmoid(v) for v in x]):
        assert all(_same(g, w) for g, w in zip(got, want)), got


def test_documented_cases():
    jitgrad._jit.ready()
    assert vm.exp(-740.0) > 0 and vm.exp(-740.0) < MIN_NORMAL  # a denormal, not 0
    assert vm.exp(710.0) == np.inf and vm.log(0.0) == -np.inf and np.isnan(vm.log(-1.0))
    assert vm.log1p(-1.0) == -np.inf and np.isnan(vm.log1p(-2.0))
    for f in (vm.sin, vm.expm1, vm.log1p, vm.tanh):
        assert np.signbit(f(-0.0)) and f(-0.0) == 0.0
    assert vm.logistic is vm.sigmoid
    assert vm.sin(3) == vm.sin(3.0) and vm.exp(np.float32(1.5)) == vm.exp(1.5)  # ints, float32
    assert vm.pow(2, 10) == 1024.0 and vm.pow(np.float32(2.0), 0.5) == vm.pow(2.0, 0.5)
    assert vm.pow(np.nan, 0.0) == 1.0 and vm.pow(1.0, np.nan) == 1.0 and np.isnan(vm.pow(-2, 0.5))
    assert vm.pow(-0.0, -3.0) == -np.inf and vm.pow(-np.inf, 3.0) == -np.inf
    assert 0.0 < vm.pow(2.0, -1074.0) < MIN_NORMAL and vm.pow(2.0, 1024.0) == np.inf


@pytest.mark.parametrize("name", FUNCTIONS)
@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True))
def test_random_floats(name, x):
    jitgrad._jit.ready()
    got = getattr(vm, name)(x)  # the scalar code, called from Python
    want = float(numpy_result(name, x))
    assert ulps(got, want) <= ULPS, (x, got, want)
    assert np.isnan(got) == np.isnan(want)
    if want == 0.0:
        assert np.signbit(got) == np.signbit(want), (x, got, want)


# ------------------------------------------------------------------------------------------------
# pow, on (x, y) pairs
# ------------------------------------------------------------------------------------------------


def pow_numpy(x, y):
    with np.errstate(all="ignore"):
        return np.power(np.asarray(x, np.float64), np.asarray(y, np.float64))


def pow_true(x, y):
    """x**y in 80-bit long double, rounded to float64 (as `true_result`)."""
    with np.errstate(all="ignore"):
        xl = np.asarray(x, np.float64).astype(np.longdouble)
        return np.power(xl, np.asarray(y, np.float64).astype(np.longdouble)).astype(np.float64)


def _signs(n):
    return _RNG.choice([-1.0, 1.0], n)


def _y_for(x, lo, hi):
    """For each x, a y with y log(abs(x)) uniform in [lo, hi]: the results spread over that range
    of logarithms (from the denormals, -745.13, to overflow, 709.78)."""
    with np.errstate(divide="ignore"):
        return _uniform(lo, hi, x.size) / np.log(np.abs(x))


def _pow_points():
    n = 100_000
    # x over the whole positive range, results from below the denormals to beyond overflow
    wide = _log_uniform(TINY, MAX, 3 * n, signed=False)
    # x near 1 (y up to 2**60 and beyond), and at the ends of log's reduction (s = +-0.17)
    near1 = 1.0 + _log_uniform(1e-16, 0.5, 2 * n)
    ends = _log_uniform(0.7, 1.42, n, signed=False)
    # negative x with integer y, both parities, results over the whole range too
    neg = -_log_uniform(1e-300, 1e300, n, signed=False)
    neg_y = np.round(_y_for(neg, -745.5, 710.0))
    neg1 = -(1.0 + _log_uniform(1e-16, 1e-2, n // 2))
    neg1_y = np.round(_y_for(neg1, -745.5, 710.0))
    # small integer y, x over the whole range, both signs (many results 0 or inf)
    small = _log_uniform(TINY, MAX, n)
    small_y = _RNG.integers(-12, 13, n).astype(np.float64)
    # large integer y, 2**20 to 2**64 (from 2**53 all even), x near enough 1 for a finite result
    big_y = np.round(_log_uniform(2.0**20, 2.0**64, n // 2))
    big = np.exp(_uniform(-745.0, 709.0, n // 2) / big_y) * _signs(n // 2)
    # everyday arguments, and arbitrary pairs (mostly 0, inf and nan)
    plain = _log_uniform(1e-3, 1e3, n, signed=False)
    plain_y = _uniform(-30.0, 30.0, n)
    any_x, any_y = _log_uniform(TINY, MAX, n // 2), _log_uniform(TINY, 1e4, n // 2)
    grid_x, grid_y = np.array(POW_GRID).T
    x = np.concatenate([wide, near1, ends, neg, neg1, small, big, plain, any_x, grid_x])
    y = np.concatenate([_y_for(wide, -746.0, 710.0), _y_for(near1, -746.0, 710.0),
                        _y_for(ends, -746.0, 710.0), neg_y, neg1_y, small_y, big_y, plain_y, any_y,
                        grid_y])
    return x, y


_X_EDGES = [0.0, TINY, MAX_DENORMAL, 1.0, 0.5, 2.0, np.inf, MAX]
_Y_EDGES = [0.0, 0.5, 1.0, 2.0, 3.0, np.inf, 2.0**53, 2.0**53 - 1, 2.0**53 + 2, 2.0**52 + 1,
            2.0**52 - 0.5, 1e308, 1023.0, 1024.0, 1025.0, 1074.0, 1075.0, TINY]
POW_GRID = [(x, y) for x in [*_X_EDGES, *(-v for v in _X_EDGES), np.nan]
            for y in [*_Y_EDGES, *(-v for v in _Y_EDGES), np.nan]] + [
    # the overflow and underflow thresholds, results exactly representable, and signs
    (2.0, 1023.9999999999999), (2.0, -1074.5), (2.0, -1075.5), (-2.0, -1075.0), (-2.0, 1023.0),
    (10.0, 308.0), (10.0, 309.0), (10.0, -323.0), (10.0, -324.0), (np.e, 709.782712893384),
    (MAX, -1.0), (MIN_NORMAL, -1.0), (-TINY, 3.0), (-TINY, -3.0), (1 + 2**-52, 2.0**53),
    (1 - 2**-53, 2.0**62), (1 + 2**-52, -(2.0**62)), (-1.0, 0.5), (3.0, 2.0), (-3.0, 3.0),
    (10.0, 22.0), (-0.1, 3.0), (7.0, -2.0), (1.5, 1750.0), (1.5, -1836.0), (-1.5, -1837.0),
    (2.0**-0.5, 2149.0), (4.0, 0.5), (0.25, -0.5), (8.0, 1 / 3), (-8.0, 1 / 3)]
# The one pair above whose result NumPy rounds the other way: sqrt(MAX) is 2**-110 (relative)
# below the midpoint of 2**512 and the float below, and pow gives 2**512, 0.5 ulp away.
POW_NEAR_TIES = [(MAX, 0.5)]


def test_pow_within_2_ulp(loops):
    x, y = _pow_points()
    got = loops["pow"](x, y)
    for reference in (pow_numpy, pow_true):
        want = reference(x, y)
        err = ulps(got, want)
        worst = int(np.argmax(err))
        assert err[worst] <= ULPS, (
            f"pow({x[worst]!r}, {y[worst]!r}) = {got[worst]!r}, {reference.__name__} "
            f"{want[worst]!r}: {err[worst]} ulp")


def test_pow_edge_values_exactly_as_numpy(loops):
    x, y = np.array(POW_GRID).T
    want = pow_numpy(x, y)
    for got in (loops["pow"](x, y), [vm.pow(a, b) for a, b in zip(x, y)]):  # vector, scalar
        bad = [(a, b, g, w) for a, b, g, w in zip(x, y, got, want)
               if not _same(g, w) and (a, b) not in POW_NEAR_TIES]
        assert not bad, f"pow: (x, y, ours, NumPy's) {bad}"
        for a, b in POW_NEAR_TIES:
            i = POW_GRID.index((a, b))
            assert ulps(got[i], want[i]) <= 1 and np.signbit(got[i]) == np.signbit(want[i])


@settings(max_examples=500, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True),
       y=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-1100, 1100).map(float)))
def test_pow_random_floats(x, y):
    jitgrad._jit.ready()
    got = vm.pow(x, y)  # the scalar code, called from Python
    want = float(pow_numpy(x, y))
    assert ulps(got, want) <= ULPS, (x, y, got, want)
    assert np.isnan(got) == np.isnan(want)
    if want == 0.0 or abs(want) == np.inf:
        assert np.signbit(got) == np.signbit(want), (x, y, got, want)


# ------------------------------------------------------------------------------------------------
# Called from kernels in other modules: inlined, and vectorised
# ------------------------------------------------------------------------------------------------


def _vector_code(dispatcher) -> str:
    return dispatcher.inspect_llvm(dispatcher.signatures[0])


@pytest.mark.parametrize("name", [*FUNCTIONS, "pow"])
def test_a_loop_calling_it_is_vectorised(loops, name):
    x = np.linspace(0.1, 2.0, 64)
    loops[name](*([x, -x] if name == "pow" else [x]))
    llvm = _vector_code(loops[name])
    assert " x double>" in llvm, f"the loop over {name} is not vectorised"
    # a call of a Numba function returns a status (i32); none is left: all inlined
    assert "call i32 @_ZN7jitgrad7vecmath" not in llvm, f"{name} is not inlined into the loop"
    if name in ("sin", "cos"):  # beyond 2**20, libm, through the masked vector variant
        assert re.search(rf"call [^@\n]*<\d+ x double> @jitgrad_vecmath_{name}_m\d+\(", llvm)
    if name == "pow":  # no libm pow (nor exp, log, fma) left: arithmetic, selects and FMAs
        assert re.search(r"<\d+ x double> @llvm\.fma\.v\d+f64\(", llvm)
        assert not re.search(r"@(pow|exp|log|fma)\(|@llvm\.(pow|exp|log)\.", llvm), "libm"


def test_kernel_in_another_module_calls_through_the_module():
    jitgrad._jit.ready()

    @numba.njit
    def kernel(x, out):
        for i in range(x.size):
            out[i] = jitgrad.vecmath.sin(x[i]) * vm.exp(x[i]) + vm.log1p(x[i] * x[i])

    x = np.concatenate([np.linspace(-5, 5, 1001), [3e6, -1e300, -np.inf, np.nan, -0.0]])
    out = np.empty_like(x)
    kernel(x, out)
    with np.errstate(all="ignore"):
        product, log1p = np.sin(x) * np.exp(x), np.log1p(x * x)
    # each term within a few ulp; where they cancel, the sum's error is relative to the terms
    scale = np.abs(product) + np.abs(log1p)
    finite = np.isfinite(scale)
    err = np.abs(out[finite] - (product + log1p)[finite])
    assert np.all(err <= 1e-15 * scale[finite])
    np.testing.assert_array_equal(out[~np.isfinite(scale)], (product + log1p)[~np.isfinite(scale)])
    llvm = _vector_code(kernel)
    assert re.search(r"call [^@\n]*<\d+ x double> @jitgrad_vecmath_sin_m\d+\(", llvm)
    assert "call i32 @_ZN7jitgrad7vecmath" not in llvm


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_import_numba_and_ready_makes_the_intrinsics():
    out = _python("""
        import sys
        import jitgrad._jit
        import jitgrad.vecmath as vm
        assert "numba" not in sys.modules
        assert isinstance(vm.exp, jitgrad._jit.Lazy) and isinstance(vm._bits, jitgrad._jit.Lazy)
        jitgrad._jit.ready()
        assert "numba" in sys.modules and not isinstance(vm._bits, jitgrad._jit.Lazy)
        print(vm.exp(1.0), vm.sin(1e7))
    """)
    assert out.split() == [repr(float(np.exp(1.0))), repr(float(np.sin(1e7)))]


def test_imported_after_ready():
    out = _python("""
        import jitgrad._jit
        jitgrad._jit.ready()
        import jitgrad.vecmath as vm
        print(vm.log(10.0), vm.tanh(0.5))
    """)
    assert out.split() == [repr(float(np.log(10.0))), repr(float(np.tanh(0.5)))]
