"""IEEE numerics of compiled kernels, checked against autograd (which computes with NumPy): the
gradient of powers at 0, inf and nan where NumPy has them."""

import re

import numba
import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import grad, value_and_grad
from jitgrad.codegen import sum_add

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


def test_integer_powers_of_zero():
    """Numba's float ** int raises ZeroDivisionError at 0 ** -2; NumPy gives inf."""
    check(lambda np: lambda x: np.sum(x ** -2), XS)
    check(lambda np: lambda x: x ** -3, 0.0)
    check(lambda np: lambda x: np.sum(x ** numpy.array([-3, -2, 0, 4])), XS)
