"""IEEE numerics of compiled kernels, checked against autograd (which computes with NumPy): the
gradient of powers at 0."""

import numpy
import pytest

import jitgrad.numpy as np
from jitgrad import grad, value_and_grad

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
