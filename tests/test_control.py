"""Compiled control flow: while_loop, fori_loop and cond, against autograd running the same
loops in plain Python, and against the reference interpreter."""


import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import (ShapeError, api, cond, fori_loop, grad, value_and_grad,
                     while_loop)
from jitgrad.interpret import evaluate

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402


def taylor_sine_loop(x):
    def keep_going(state):
        return np.abs(state[1]) > 0.001

    def step(state):
        ans, term, i = state
        term = -term * x ** 2 / ((2 * i + 3) * (2 * i + 2))
        return ans + term, term, i + 1

    return while_loop(keep_going, step, (x, x, 0))[0]


def taylor_sine_autograd(x):
    ans = currterm = x
    i = 0
    while anp.abs(currterm) > 0.001:
        currterm = -currterm * x ** 2 / ((2 * i + 3) * (2 * i + 2))
        ans = ans + currterm
        i += 1
    return ans


def test_while_loop_gradient_matches_autograd_on_every_path(builds):
    vg = value_and_grad(taylor_sine_loop)
    for x in numpy.linspace(-3.0, 3.0, 41):
        v, g = vg(x)
        rv, rg = autograd.value_and_grad(taylor_sine_autograd)(x)
        assert v == pytest.approx(rv, rel=1e-13, abs=1e-15)
        assert g == pytest.approx(rg, rel=1e-13, abs=1e-15)
    assert builds["taylor_sine_loop"] == 1  # one kernel for every trip count


def test_fori_loop_euler_ode_matches_unrolled_autograd():
    def simulate(y0, k, np, loop):
        def step(i, y):
            return y + 0.01 * (-k * y + np.sin(y) * (1.0 + 0.1 * i))
        return np.sum(loop(step, y0) ** 2)

    def compiled(y0, k):
        return simulate(y0, k, np, lambda step, y: fori_loop(0, 100, step, y))

    def unrolled(y0, k):
        def loop(step, y):
            for i in range(100):
                y = step(i, y)
            return y
        return simulate(y0, k, anp, loop)

    y0 = numpy.array([1.0, 2.0, 0.5])
    ours = grad(compiled, (0, 1))(y0, 0.7)
    ref = autograd.grad(unrolled, (0, 1))(y0, 0.7)
    numpy.testing.assert_allclose(ours[0], ref[0], rtol=1e-12)
    assert ours[1] == pytest.approx(ref[1], rel=1e-12)


def test_cond_gradient_on_both_branches_and_captured_values():
    w = numpy.array([1.0, -2.0])

    def f(x, s):
        return cond(np.sum(x) > 0, lambda x: np.sum(x ** 2) * s, lambda x: -np.sum(x * w), x)

    for x, expected in [(numpy.array([1.0, 2.0]), 2 * numpy.array([1.0, 2.0]) * 3.0),
                        (numpy.array([-1.0, -2.0]), -w)]:
        numpy.testing.assert_allclose(grad(f)(x, 3.0), expected)
    assert grad(f, 1)(numpy.array([1.0, 2.0]), 3.0) == pytest.approx(5.0)


def test_nested_loops_and_branches():
    def f(x):
        def outer(i, acc):
            inner = while_loop(lambda s: s[0] < i + 2, lambda s: (s[0] + 1, s[1] * 0.9 + x),
                               (0, acc))[1]
            return cond(inner[0] > 1.0, lambda v: v * 0.5, lambda v: v + 1.0, inner)
        return np.sum(fori_loop(0, 4, outer, x) ** 2)

    def reference(x):
        acc = x
        for i in range(4):
            s = acc
            for _ in range(i + 2):
                s = s * 0.9 + x
            acc = s * 0.5 if s[0] > 1.0 else s + 1.0
        return anp.sum(acc ** 2)

    for x in (numpy.array([0.3, -0.2]), numpy.array([2.0, 1.0])):
        v, g = value_and_grad(f)(x)
        assert v == pytest.approx(reference(x), rel=1e-12)
        numpy.testing.assert_allclose(g, autograd.grad(reference)(x), rtol=1e-12)


def test_compiled_loop_matches_the_interpreter():
    gf = api._GradFunction(taylor_sine_loop, 0, with_value=True)
    key, dynamic, _ = gf._signature((1.3,), {})
    build = gf._build((1.3,), {}, key)
    interpreted = evaluate(build.grad_graph, dynamic, build.consts)
    compiled = value_and_grad(taylor_sine_loop)(1.3)
    numpy.testing.assert_allclose(compiled, interpreted, rtol=1e-14)
    assert "while_loop" in str(build.grad_graph) and "scan" in str(build.grad_graph)


def test_plain_python_outside_a_trace():
    assert while_loop(lambda v: v < 10, lambda v: v * 2, 1) == 16
    assert fori_loop(0, 4, lambda i, v: v + i, 0.0) == 6.0
    assert cond(True, lambda a: a + 1, lambda a: a - 1, 1) == 2


def test_loop_value_that_grows_from_scalar_to_array_is_broadcast():
    def f(x):
        return np.sum(fori_loop(0, 3, lambda i, acc: acc + x * i, 0.0))

    numpy.testing.assert_allclose(grad(f)(numpy.ones(3)), [3.0, 3.0, 3.0])


def test_loop_value_that_changes_shape_is_a_clear_error():
    def f(x):
        return np.sum(fori_loop(0, 3, lambda i, v: v[1:], x))

    with pytest.raises(ShapeError, match="loop value 1 .* shape"):
        grad(f)(numpy.ones(5))


def _euler(np, x, steps):
    """Euler steps of y' = sin(y) * x + 0.1 y, as a Python loop (autograd runs it as it is)."""
    y = x
    for _ in range(steps):
        y = y + 0.1 * (np.sin(y) * x + 0.1 * y)
    return np.sum(y ** 2)


# The same function through each kind of compiled loop; x is an array of 3.
HIGHER_ORDER = {
    "fori_loop": lambda x: np.sum(fori_loop(
        0, 6, lambda i, y: y + 0.1 * (np.sin(y) * x + 0.1 * y), x) ** 2),
    "while_loop": lambda x: np.sum(while_loop(
        lambda c: c[0] < 6, lambda c: (c[0] + 1, c[1] + 0.1 * (np.sin(c[1]) * x + 0.1 * c[1])),
        (0, x))[1] ** 2),
    "cond-inside": lambda x: np.sum(fori_loop(0, 6, lambda i, y: cond(
        i % 2 == 0, lambda y: y + 0.1 * (np.sin(y) * x + 0.1 * y),
        lambda y: y + 0.1 * (np.sin(y) * x + 0.1 * y), y), x) ** 2),
}


@pytest.mark.parametrize("name", sorted(HIGHER_ORDER))
def test_derivatives_of_derivatives_through_compiled_loops(name):
    f, x = HIGHER_ORDER[name], numpy.array([0.3, -0.7, 1.1])
    reference = lambda x: _euler(anp, x, 6)  # noqa: E731
    with jitgrad.execution("interpret"):
        hessian = jitgrad.hessian(f)(x)
        third = grad(lambda x: np.sum(grad(lambda x: np.sum(grad(f)(x) ** 2))(x) * x))(x)
    numpy.testing.assert_allclose(hessian, autograd.hessian(reference)(x), rtol=1e-12)
    # (forward mode cannot go through the gradient's saved loop: reverse over reverse instead)
    from jitgrad.api import _CACHES
    assert _CACHES[f][("hessian by rows", 0)]
    expected = autograd.grad(lambda x: anp.sum(autograd.grad(
        lambda x: anp.sum(autograd.grad(reference)(x) ** 2))(x) * x))(x)
    numpy.testing.assert_allclose(third, expected, rtol=1e-11)


def test_hessian_through_a_compiled_python_loop_with_a_traced_trip_count():
    def f(x, n):
        y, i = x, 0
        while i < n:  # n is traced: a compiled loop
            y = y + 0.1 * (np.sin(y) * x + 0.1 * y)
            i += 1
        return np.sum(y ** 2)

    x = numpy.array([0.3, -0.7, 1.1])
    for n in (0, 1, 6):
        h = jitgrad.hessian(f)(x, n)
        numpy.testing.assert_allclose(h, autograd.hessian(lambda x: _euler(anp, x, n))(x),
                                      rtol=1e-12, atol=1e-300)
    hvp = jitgrad.hessian_vector_product(f)(x, 6, numpy.array([1.0, 2.0, -1.0]))
    numpy.testing.assert_allclose(
        hvp, autograd.hessian(lambda x: _euler(anp, x, 6))(x) @ [1.0, 2.0, -1.0], rtol=1e-12)


def test_explain_shows_regions():
    text = str(jitgrad.explain(taylor_sine_loop, 1.0).grad_ir)
    assert "def body(" in text and "def cond(" in text and "def body_vjp(" in text
