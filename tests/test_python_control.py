"""Plain Python `if`/`while`/`for` on traced values: converted into compiled loops and
branches (convert/ + control.py), with autograd's gradient on every path."""


import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import control, grad, value_and_grad

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402


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


def test_taylor_sine_every_path_one_compile(builds):
    ours, theirs = grad(make_taylor_sine(np)), autograd.grad(make_taylor_sine(anp))
    xs = numpy.linspace(-3.0, 3.0, 301)
    numpy.testing.assert_allclose([ours(x) for x in xs], [theirs(x) for x in xs],
                                  rtol=1e-13, atol=1e-15)
    assert ours(1.0) == pytest.approx(theirs(1.0), rel=1e-14)  # a Python float, same kernel
    assert builds["taylor_sine"] == 1
    assert "while_loop" in str(jitgrad.explain(make_taylor_sine(np), 1.0).ir)


def make_branchy(np):
    def branchy(x):
        if np.sum(x * x) > 4:
            y = np.sin(x) * 2.0
        else:
            y = x ** 3
        if np.max(x) > 1.5:
            return np.sum(y) * 10.0
        return np.sum(y)
    return branchy


@pytest.mark.parametrize("x", [[0.5, 0.2], [1.0, 2.0], [1.6, 0.1], [-3.0, 0.0]])
def test_if_on_a_reduction_and_early_return(builds, x):
    x = numpy.array(x)
    v, g = value_and_grad(make_branchy(np))(x)
    rv, rg = autograd.value_and_grad(make_branchy(anp))(x)
    assert v == pytest.approx(rv, rel=1e-14)
    numpy.testing.assert_allclose(g, rg, rtol=1e-14)
    assert builds["branchy"] <= 1


def make_newton_sqrt(np):
    def refine(a, guess):
        while np.abs(guess * guess - a) > 1e-10:
            guess = 0.5 * (guess + a / guess)
        return guess

    def newton_sqrt(a):
        return np.sum(refine(a, 1.0 + a * 0.0))
    return newton_sqrt


def test_helper_function_with_a_loop_is_converted_too():
    a = 2.0
    ours = grad(make_newton_sqrt(np))(a)
    assert ours == pytest.approx(autograd.grad(make_newton_sqrt(anp))(a), rel=1e-10)
    assert ours == pytest.approx(0.5 / numpy.sqrt(a), rel=1e-8)


def make_ranges(np, n):
    def ranges(x):
        s = 0.0
        for i in range(n):
            s = s + np.sin(x * i) / (i + 1)
        for j in range(10, 0, -3):
            s = s * 0.5 + x * j
        return np.sum(s)
    return ranges


@pytest.mark.parametrize("n", [3, control.UNROLL_LIMIT + 50])
def test_for_range_short_is_unrolled_long_is_compiled(n):
    x = numpy.array([0.3, -0.7])
    numpy.testing.assert_allclose(grad(make_ranges(np, n))(x),
                                  autograd.grad(make_ranges(anp, n))(x), rtol=1e-12)
    text = str(jitgrad.explain(make_ranges(np, n), x).ir)
    assert ("while_loop" in text) == (n > control.UNROLL_LIMIT)


def test_long_range_whose_body_indexes_with_the_counter_is_unrolled():
    n = control.UNROLL_LIMIT + 10
    c = numpy.linspace(0.0, 1.0, n)

    def f(x):
        s = 0.0
        for i in range(n):
            s = s + x[i % 2] * c[i]
        return s

    numpy.testing.assert_allclose(grad(f)(numpy.array([1.0, 2.0])),
                                  [c[0::2].sum(), c[1::2].sum()], rtol=1e-12)


def test_loop_variable_that_starts_int_and_becomes_float():
    def f(x):
        k = 0
        while k < np.sum(x) * 3:
            k = k + x[0] * 0.5 + 1
        return k * x[1]

    def ref(x):
        k = 0
        while k < anp.sum(x) * 3:
            k = k + x[0] * 0.5 + 1
        return k * x[1]

    for x in (numpy.array([1.0, 2.0]), numpy.array([3.0, 0.5])):
        numpy.testing.assert_allclose(grad(f)(x), autograd.grad(ref)(x), rtol=1e-13)


def test_concrete_python_conditions_still_run_as_python():
    def f(x, mode):
        if mode == "square":
            return np.sum(x ** 2)
        total = 0.0
        k = 0
        while k < 3:  # concrete: unrolled
            total = total + np.sum(x) * k
            k += 1
        return total

    x = numpy.array([1.0, 2.0])
    numpy.testing.assert_allclose(grad(f)(x, "square"), 2 * x)
    numpy.testing.assert_allclose(grad(f)(x, "other"), [3.0, 3.0])
    assert "while_loop" not in str(jitgrad.explain(f, x, "other").ir)


def make_damped(np, n):
    def damped(x):
        k = 0
        while k < n:  # concrete, but long: past UNROLL_LIMIT the rest is a compiled loop
            x = x * 0.99 + 0.01 * np.sin(x)
            k += 1
        return np.sum(x)
    return damped


@pytest.mark.parametrize("n", [30, control.UNROLL_LIMIT * 3])
def test_long_concrete_while_compiles_the_rest(n):
    x = numpy.array([0.5, 1.0])
    numpy.testing.assert_allclose(grad(make_damped(np, n))(x),
                                  autograd.grad(make_damped(anp, n))(x), rtol=1e-12)
    text = str(jitgrad.explain(make_damped(np, n), x).ir)
    assert ("while_loop" in text) == (n > control.UNROLL_LIMIT)


def test_a_very_deep_unrolled_chain():
    def deep(x):
        for _ in [0] * 400:  # not a range: always unrolled; deeper than the default recursion limit
            x = np.sin(x) * 0.5 + x
        return np.sum(x)

    def ref(x):
        for _ in [0] * 400:
            x = anp.sin(x) * 0.5 + x
        return anp.sum(x)

    x = numpy.array([0.1, -0.2])
    numpy.testing.assert_allclose(grad(deep)(x), autograd.grad(ref)(x), rtol=1e-10)


def test_if_stmt_keeps_a_variable_neither_branch_assigns():
    before = control.Undefined("y")

    def f(x):
        (z, y) = control.if_stmt(np.sum(x) > 0, lambda z, y: (x * 2.0, y),
                                 lambda z, y: (x * 3.0, y), (x, before), ("z", "y"), "here:1")
        assert y is before
        return np.sum(z)

    numpy.testing.assert_allclose(grad(f)(numpy.array([1.0, 2.0])), [2.0, 2.0])
    numpy.testing.assert_allclose(grad(f)(numpy.array([-1.0, -2.0])), [3.0, 3.0])
