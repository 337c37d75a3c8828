"""IEEE numerics of compiled kernels, checked against autograd (which computes with NumPy): the
gradient of powers at 0, inf and nan where NumPy has them, and the iteration limit of compiled
loops."""

import importlib.util
import os
import re
import subprocess
import sys
import time

import numba
import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import ad, control, fori_loop, grad, value_and_grad, while_loop
from jitgrad.runtime import sum_add
from jitgrad.interpret import evaluate
from jitgrad.trace import Trace

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")


def assert_same(actual, expected):
    """Equal to rounding, with inf and nan in the same places (and infs of the same sign)."""
    numpy.testing.assert_allclose(numpy.asarray(actual, float), numpy.asarray(expected, float),
                                  rtol=1e-13, atol=1e-300, equal_nan=True)


def check(make, *args, argnum=0):
    """`make(np)` is a function; its compiled value and gradient must be autograd's."""
    # NumPy scalars for autograd: Python's 0.0 ** -1 raises where NumPy's gives inf.
    ag_args = [numpy.float64(a) if isinstance(a, float) else a for a in args]
    with numpy.errstate(all="ignore"):
        expected = autograd.value_and_grad(make(anp), argnum)(*ag_args)
    value, gradient = value_and_grad(make(np), argnum)(*args)
    assert_same(value, expected[0])
    if isinstance(argnum, tuple):
        for g, e in zip(gradient, expected[1]):
            assert_same(g, e)
    else:
        assert_same(gradient, expected[1])


# ------------------------------------------------------------------------------------------------
# The gradient of x ** y where the exponent is 0 (issue 6, item 9)
# ------------------------------------------------------------------------------------------------

XS = numpy.array([0.0, -1.0, 2.0, 0.5])
EXPONENTS = [0, 1, 2, 3, 0.5, -1, 0.0, 2.0]


@pytest.mark.parametrize("y", EXPONENTS)
def test_pow_literal_exponent_matches_autograd(y):
    check(lambda np: lambda x: np.sum(x ** y), XS)
    for x in XS:  # the scalar kernel as well
        check(lambda np: lambda x: x ** y, float(x))  # noqa: B023 (called at once)


def test_pow_traced_exponent_matches_autograd():
    ys = numpy.array([0.0, 1.0, 2.0, 3.0, 0.5, -1.0, -2.0])
    check(lambda np: lambda x, y: np.sum(x[:, None] ** y[None, :]), XS, ys, argnum=(0, 1))
    for y in ys:
        for x in XS:
            check(lambda np: lambda a, b: a ** b, float(x), float(y), argnum=(0, 1))


COEFFS = [1.5, -2.0, 3.0, 0.25]
POWERS = numpy.arange(4.0)


def poly_literal(np):
    return lambda x: sum(c * x ** k for k, c in enumerate(COEFFS))


def poly_array(np):
    return lambda x: np.sum(numpy.array(COEFFS) * x ** POWERS)


@pytest.mark.parametrize("make", [poly_literal, poly_array])
def test_polynomial_at_zero(make):
    for x in (0.0, -1.0, 2.0, 0.5):
        check(make, x)
    assert grad(make(np))(0.0) == -2.0


@pytest.mark.parametrize("make", [poly_literal, poly_array])
def test_polynomial_second_derivative_at_zero(make):
    for x in (0.0, -1.0, 2.0):
        expected = autograd.grad(autograd.grad(make(anp)))(x)
        assert numpy.isfinite(expected)
        assert_same(grad(grad(make(np)))(x), expected)
    assert grad(grad(make(np)))(0.0) == 6.0


# ------------------------------------------------------------------------------------------------
# inf and nan as NumPy has them: no fast-math rewrite folds them away (item 10)
# ------------------------------------------------------------------------------------------------

SPECIAL_CASES = [
    (lambda np: lambda x: np.log(np.exp(x)), 1000.0),  # exp overflows: inf, not 1000
    (lambda np: lambda x: np.exp(np.log(x)), -1.0),  # log(-1) is nan, not -1
    (lambda np: lambda x: (x * 2.0) / 2.0, 1e308),  # x * 2 overflows: inf, not 1e308
    (lambda np: lambda x: x - x, numpy.inf),  # inf - inf is nan, not 0
    (lambda np: lambda x: 0.0 * x, numpy.inf),  # 0 * inf is nan, not 0
    (lambda np: lambda x: x * 0.0, -numpy.inf),
    (lambda np: lambda x: x / x, 0.0),  # 0 / 0 is nan, not 1
    (lambda np: lambda x: x / x, numpy.inf),
    (lambda np: lambda x: (x + 1e308) - 1e308, 1e308),  # inf, not x
    (lambda np: lambda x: np.sqrt(x) ** 2, -1.0),
]


@pytest.mark.parametrize("case", range(len(SPECIAL_CASES)))
def test_scalar_inf_and_nan_as_numpy(case):
    make, x = SPECIAL_CASES[case]
    check(make, x)


def special_array(n=1003):
    """Ordinary values with 1000 and 1e308 (which overflow when doubled or exponentiated), -1 (a
    nan under log), inf and 0, at the start, in the middle and in the remainder of a vector
    loop."""
    x = numpy.linspace(0.5, 2.0, n)
    x[[0, 500, n - 1]] = 1000.0, 1e308, -1.0
    return x


@pytest.mark.parametrize("case", range(len(SPECIAL_CASES)))
def test_elementwise_and_sums_inf_and_nan_as_numpy(case):
    make, x0 = SPECIAL_CASES[case]
    x = special_array()
    x[7] = x0
    check(lambda np: lambda x: np.sum(make(np)(x)), x)  # the reduction does not fold them away
    check(lambda np: lambda x: np.sum(make(np)(x) * x), x)


@pytest.mark.parametrize("special", [numpy.inf, -numpy.inf, numpy.nan])
def test_reductions_with_inf_and_nan(special):
    x = numpy.linspace(-1.0, 1.0, 1003)
    for where in (0, 517, 1002):
        x2 = x.copy()
        x2[where] = special
        check(lambda np: lambda x: np.sum(x), x2)
        check(lambda np: lambda x: np.sum(x * x), x2)
        check(lambda np: lambda x: np.max(x) + np.min(x), x2)
        check(lambda np: lambda x: np.sum(x[1:] - x[:-1] ** 2), x2)  # the gather loop
        m2 = x2.reshape(17, 59)
        check(lambda np: lambda m: np.sum(np.sum(m, axis=1) ** 2), m2)  # innermost axis
        check(lambda np: lambda m: np.sum(np.sum(m, axis=0) ** 2), m2)  # outer axis
        check(lambda np: lambda m: np.sum(np.max(m, axis=1)), m2)
    both = x.copy()
    both[[3, 900]] = numpy.inf, -numpy.inf  # inf - inf: nan
    check(lambda np: lambda x: np.sum(x), both)


def test_only_the_sum_accumulation_may_be_reassociated():
    """`reassoc` lets LLVM fold log(exp(x)) and (x * 2) / 2: no kernel has it, only the addition
    into a sum's accumulator (so that the reduction vectorises) carries the flag."""
    def f(x):
        return np.sum(np.log(np.exp(x)) * 2.0 / 2.0)

    source = jitgrad.explain(f, numpy.ones(100)).source
    assert "reassoc" not in source
    assert re.search(r"acc\d+ = sum_add\(acc\d+, s\d+\)", source)

    @numba.njit(fastmath={"contract"})
    def g(acc, x):
        for i in range(x.shape[0]):
            acc = sum_add(acc, numpy.log(numpy.exp(x[i])) * 2.0 / 2.0)
        return acc

    assert g(0.0, numpy.array([1000.0, 1.0])) == numpy.inf
    flagged = [line for line in g.inspect_llvm(g.signatures[0]).splitlines()
               if re.match(r"\s+(%\S+ = )?\w+ .*\breassoc\b", line)]  # instructions
    assert flagged and all(re.search(r"= fadd reassoc contract|reduce\.fadd", line)
                           for line in flagged), flagged


@pytest.mark.parametrize("mode", ["compile", "interpret"])
def test_tanh_gradient_keeps_its_relative_accuracy_where_tanh_saturates(mode):
    # 1 - tanh(x)**2 would be wrong by 77% at x = 19 and 0 beyond (autograd: 1/cosh(x)**2)
    x = numpy.array([0.3, -2.0, 4.1, 4.2, 10.0, -19.0, 25.0, 300.0, 800.0, numpy.inf, numpy.nan])
    with numpy.errstate(over="ignore"):
        expected = 1.0 / numpy.cosh(x) ** 2
    with jitgrad.execution(mode), numpy.errstate(over="raise"):  # no overflow in the rule
        g = jitgrad.elementwise_grad(np.tanh)(x)
    numpy.testing.assert_allclose(g, expected, rtol=5e-13, atol=0, equal_nan=True)
    assert g[-3] == 0.0 < g[-4]
    numpy.testing.assert_allclose(jitgrad.elementwise_grad(jitgrad.elementwise_grad(np.tanh))(
        x[:6]), -2 * numpy.tanh(x[:6]) * expected[:6], rtol=1e-12)


def test_integer_powers_of_zero():
    """Numba's float ** int raises ZeroDivisionError at 0 ** -2; NumPy gives inf."""
    check(lambda np: lambda x: np.sum(x ** -2), XS)
    check(lambda np: lambda x: x ** -3, 0.0)
    check(lambda np: lambda x: np.sum(x ** numpy.array([-3, -2, 0, 4])), XS)


# ------------------------------------------------------------------------------------------------
# The iteration limit of compiled loops (issue 6)
# ------------------------------------------------------------------------------------------------

LIMIT_MESSAGE = (r"the loop at .*test_numerics\.py:\d+ is still running after {n} iterations, "
                 r"the limit for a compiled loop; .*max_iterations=.*MAX_LOOP_ITERATIONS"
                 r".*JITGRAD_MAX_LOOP_ITERATIONS")


def runaway(x):
    while x > 0:
        x = x + 1.0
    return x


def test_runaway_python_while_under_grad_raises_quickly(monkeypatch):
    monkeypatch.setattr(control, "MAX_LOOP_ITERATIONS", 1000)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n="1,000")) as info:
        grad(runaway)(1.0)
    assert time.perf_counter() - start < 60  # a trace and a compile, not a tape of 1e7 rows
    line = runaway.__code__.co_firstlineno + 1
    assert f"test_numerics.py:{line} " in str(info.value)


def test_runaway_loop_not_differentiated_raises(monkeypatch):
    """A loop that does not depend on the differentiated argument keeps no tape: the limit is
    checked by a counter."""
    monkeypatch.setattr(control, "MAX_LOOP_ITERATIONS", 500)

    def f(x, y):
        while y > 0:
            y = y + 1.0
        return x * y

    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n="500")):
        grad(f)(1.0, numpy.array(1.0))


def counted(n, limit, x):
    """x ** n by a loop of exactly n iterations."""
    return while_loop(lambda v: v[0] < n, lambda v: (v[0] + 1, v[1] * x), (0, 1.0),
                      max_iterations=limit)[1]


@pytest.mark.parametrize("limit", [0, 5, 16, 40])
def test_max_iterations_is_exact(limit):
    x = 1.01
    if limit:  # the loop may run `limit` iterations, with or without a tape
        assert_same(value_and_grad(lambda x: counted(limit, limit, x))(x),
                    (x ** limit, limit * x ** (limit - 1)))
        assert_same(grad(lambda x, a: counted(limit, limit, a[0]) * x)(x, numpy.array([x])),
                    x ** limit)
    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n=limit)):
        grad(lambda x: counted(limit + 1, limit, x))(x)
    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n=limit)):
        grad(lambda x, a: counted(limit + 1, limit, a[0]) * x)(x, numpy.array([x]))
    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n=limit)):
        counted(limit + 1, limit, x)  # plain Python, outside a trace
    assert counted(limit, limit, 2.0) == 2.0 ** limit


def taylor_sine(np):
    def f(x):
        ans = currterm = x
        i = 0
        while np.abs(currterm) > 0.001:
            currterm = -currterm * x ** 2 / ((2 * i + 3) * (2 * i + 2))
            ans = ans + currterm
            i += 1
        return ans
    return f


def test_loops_within_the_limit_are_unaffected(monkeypatch):
    monkeypatch.setattr(control, "MAX_LOOP_ITERATIONS", 5)  # what 2.5 takes
    check(taylor_sine, 2.5)
    with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n=5)):
        grad(taylor_sine(np))(3.0)


def test_a_concrete_range_longer_than_the_limit_runs(monkeypatch):
    """A loop over a concrete range ends by itself: the limit never stops it short."""
    monkeypatch.setattr(control, "MAX_LOOP_ITERATIONS", 10)

    def explicit(x):
        return fori_loop(0, 150, lambda i, v: v * x, 1.0)

    def python_for(x):
        v = 1.0
        for i in range(150):  # over UNROLL_LIMIT: compiled
            v = v * x
        return v

    for f in (explicit, python_for):
        assert_same(value_and_grad(f)(1.001), (1.001 ** 150, 150 * 1.001 ** 149))


def test_limit_in_the_interpreter(monkeypatch):
    """The reference interpreter (and so grad of grad, which inlines graphs) has the same limit:
    on the traced graph and on its gradient graph, whose forward loop keeps a tape."""
    monkeypatch.setattr(control, "MAX_LOOP_ITERATIONS", 100)

    def f(x, n):
        return while_loop(lambda v: v[0] < n, lambda v: (v[0] + 1.0, v[1] * x), (0.0, 1.0))[1]

    trace = Trace("f")
    with trace:
        x, n = trace.new_input((), numpy.float64), trace.new_input((), numpy.float64)
        graph = trace.finish([f(x, n)])
    vg_graph, vg_consts = ad.value_and_grad_graph(graph, trace.const_values, (0,))
    assert_same(evaluate(graph, [1.01, 100.0], trace.const_values), [1.01 ** 100])
    assert_same(evaluate(vg_graph, [1.01, 100.0], vg_consts), [1.01 ** 100, 100 * 1.01 ** 99])
    for g, consts in ((graph, trace.const_values), (vg_graph, vg_consts)):
        with pytest.raises(RuntimeError, match=LIMIT_MESSAGE.format(n=100)):
            evaluate(g, [1.01, 101.0], consts)


def test_limit_from_the_environment():
    code = "import jitgrad.control as c; print(c.MAX_LOOP_ITERATIONS)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "JITGRAD_MAX_LOOP_ITERATIONS": "1234"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "1234"
    assert control.MAX_LOOP_ITERATIONS == int(os.environ.get("JITGRAD_MAX_LOOP_ITERATIONS",
                                                             "10000000"))


def test_bad_max_iterations():
    def f(x, bad):
        return while_loop(lambda v: v < 2.0, lambda v: v * x, 1.0, max_iterations=bad)

    for bad in (-1, 2.5, "10", True):
        with pytest.raises(ValueError, match="max_iterations must be an int >= 0"):
            grad(f)(1.5, bad)


def test_limit_message_is_a_safe_literal(tmp_path):
    """The message is baked into the generated source: a file name with quotes, backslashes,
    newlines or non-ASCII characters can neither break the literal nor become code."""
    path = tmp_path / "we'ird \"na\\me\"\n\u00e9.py"
    path.write_text("from jitgrad import while_loop\n\n"
                    "def f(x):\n"
                    "    return while_loop(lambda v: v > 0, lambda v: v + x, x,\n"
                    "                      max_iterations=7)\n")
    spec = importlib.util.spec_from_file_location("weird_name", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(RuntimeError, match="still running after 7 iterations") as info:
        grad(module.f)(1.0)
    assert str(info.value).isascii() and str(info.value).isprintable()
    assert "\\xe9" in str(info.value) or "\\u00e9" in str(info.value)


_EDGES = numpy.array([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300,
                      1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 20.0, -20.0, 709.78, 709.79,
                      -745.0, -746.0, 1e6, -1e6, 1.5e300, -1.5e300, 1.7976931348623157e308,
                      -1.7976931348623157e308, numpy.inf, -numpy.inf, numpy.nan])
_POINTS = numpy.concatenate([_EDGES, numpy.random.RandomState(5).standard_normal(200) * 30])


def _ulps(actual, expected):
    """Distance in units in the last place, 0 where both are the same inf or both nan."""
    actual, expected = numpy.asarray(actual), numpy.asarray(expected)
    same = (actual == expected) | (numpy.isnan(actual) & numpy.isnan(expected))
    with numpy.errstate(invalid="ignore", over="ignore"):
        spacing = numpy.abs(numpy.spacing(numpy.where(numpy.isfinite(expected), expected, 1.0)))
        return numpy.where(same, 0.0, numpy.abs(actual - expected) / spacing)


@pytest.mark.parametrize("fast_math", ["1", "0"])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_compiled_transcendentals_are_numpys_at_the_edges(monkeypatch, fast_math, dtype):
    """Kernels compute exp, expm1, log, log1p, sin, cos and tanh with jitgrad.vecmath (loops that
    vectorise) unless JITGRAD_FAST_MATH=0 asks for libm: either way within 2 ulp of NumPy, with
    NumPy's values at 0, -0, denormals, overflow, the largest doubles, inf and nan."""
    monkeypatch.setenv("JITGRAD_FAST_MATH", fast_math)
    names = ["exp", "expm1", "log", "log1p", "sin", "cos", "tanh"]
    with numpy.errstate(over="ignore"):
        x = _POINTS.astype(dtype)

    def f(x, w):  # the gradient with respect to w is every function's values: one kernel
        return np.sum(w * np.stack([getattr(np, name)(x) for name in names]))

    w = numpy.ones((len(names), x.size), dtype)
    with numpy.errstate(all="ignore"):
        expected = numpy.stack([getattr(numpy, name)(x) for name in names])
    source = jitgrad.explain(f, x, w, argnum=1).source
    assert ("vecmath.exp(" in source) == (fast_math == "1"), source
    actual = grad(f, 1)(x, w)
    assert actual.dtype == dtype
    for name, a, e in zip(names, actual, expected):
        ulps = _ulps(a, e)
        assert ulps.max() <= 2, (name, dtype, ulps.max(), x[numpy.argmax(ulps)])


@pytest.mark.parametrize("fast_math", ["1", "0"])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_compiled_power_is_numpys_at_the_edges(monkeypatch, fast_math, dtype):
    """`x ** y` of arrays, and of a literal exponent that is not a product or a square root, is
    jitgrad.vecmath.pow in kernels (libm's with JITGRAD_FAST_MATH=0): within 2 ulp of NumPy,
    with its values for zeros of both signs, negative bases, integer and huge exponents, inf
    and nan."""
    monkeypatch.setenv("JITGRAD_FAST_MATH", fast_math)
    exponents = numpy.array([0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 3.0, 2.5, -2.5, 0.1, 7.0, -3.0,
                             1e300, -1e300, 9007199254740993.0, numpy.inf, -numpy.inf,
                             numpy.nan])
    with numpy.errstate(over="ignore"):
        x, y = (a.ravel().astype(dtype) for a in numpy.meshgrid(_EDGES, exponents))
    w = numpy.ones((2, x.size), dtype)

    def f(x, y, w):  # the gradient with respect to w is the powers' values
        return np.sum(w[0] * x ** y) + np.sum(w[1] * x ** 1.5)

    source = jitgrad.explain(f, x, y, w, argnum=2).source
    assert ("vecmath.pow(" in source) == (fast_math == "1"), source
    actual = grad(f, 2)(x, y, w)
    with numpy.errstate(all="ignore"):
        expected = [numpy.power(x, y), numpy.power(x, dtype(1.5))]
    for a, e in zip(actual, expected):
        assert a.dtype == dtype
        ulps = _ulps(a, e)
        assert ulps.max() <= 2, (dtype, ulps.max(), x[numpy.argmax(ulps)], y[numpy.argmax(ulps)])
