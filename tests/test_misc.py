"""jitgrad.misc (flatten, optimizers) and jitgrad.builtins, against autograd's."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad.builtins import isinstance as jg_isinstance
from jitgrad.builtins import type as jg_type
from jitgrad.misc import flatten
from jitgrad.misc.optimizers import adam, rmsprop, sgd

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
aopt = pytest.importorskip("autograd.misc.optimizers")

PARAMS = {"W": numpy.arange(6.0).reshape(2, 3) / 10, "b": [numpy.zeros(3), 1.5]}


def loss(np):
    def f(p, i):
        h = np.tanh(np.dot(numpy.array([1.0, -2.0]), p["W"]) + p["b"][0])
        return np.sum((h - 0.5) ** 2) + p["b"][1] ** 2 * (1 + i % 2)

    return f


def test_flatten_round_trip_and_order():
    flat, unflatten = flatten(PARAMS)
    numpy.testing.assert_array_equal(flat, numpy.r_[PARAMS["W"].ravel(), 0, 0, 0, 1.5])
    back = unflatten(flat)
    numpy.testing.assert_array_equal(back["W"], PARAMS["W"])
    assert back["b"][1] == 1.5 and isinstance(back["b"], list)
    from autograd.misc import flatten as autograd_flatten
    numpy.testing.assert_array_equal(flat, autograd_flatten(PARAMS)[0])


def test_gradient_through_unflatten():
    flat, unflatten = flatten(PARAMS)
    g = jitgrad.grad(lambda v: loss(np)(unflatten(v), 0))(flat)
    expected = autograd.grad(lambda v: loss(anp)(unflatten(v), 0))(flat)
    numpy.testing.assert_allclose(g, expected, rtol=1e-13)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_optimizers_match_autograd(name):
    ours, theirs = {"sgd": (sgd, aopt.sgd), "rmsprop": (rmsprop, aopt.rmsprop),
                    "adam": (adam, aopt.adam)}[name]
    seen = []
    result = ours(jitgrad.grad(loss(np)), PARAMS, num_iters=30, step_size=0.05,
                  callback=lambda x, i, g: seen.append(i))
    expected = theirs(autograd.grad(loss(anp)), PARAMS, num_iters=30, step_size=0.05)
    numpy.testing.assert_allclose(result["W"], expected["W"], rtol=1e-12)
    assert result["b"][1] == pytest.approx(expected["b"][1], rel=1e-12)
    assert seen == list(range(30))
    assert PARAMS["b"][1] == 1.5  # the initial parameters are not modified


def test_builtins_see_traced_arrays_as_arrays():
    def f(x):
        assert jg_isinstance(x, numpy.ndarray) and jg_type(x) is numpy.ndarray
        assert not jg_isinstance(x, (list, dict)) and jg_isinstance([x], list)
        return np.sum(x ** 2)

    numpy.testing.assert_array_equal(jitgrad.grad(f)(numpy.ones(2)), [2.0, 2.0])


def test_fixed_point_and_its_derivative():
    from jitgrad.misc.fixed_points import fixed_point

    def sqrt(a):
        return fixed_point(lambda a: lambda x: x - 0.05 * (x ** 2 - a), a, 10.0,
                           lambda x, y: np.abs(x - y), 1e-10)

    assert sqrt(2.0) == pytest.approx(2 ** 0.5, rel=1e-8)
    assert jitgrad.grad(sqrt)(2.0) == pytest.approx(0.5 / 2 ** 0.5, rel=1e-6)


def _sqrt_by_fixed_point(np, fixed_point):
    """autograd's examples/fixed_points.py: a loose tolerance, so the implicit derivative and
    the derivative of the iterations differ visibly."""
    return lambda a: fixed_point(lambda a: lambda x: x - 0.05 * (x ** 2 - a), a, 10.0,
                                 lambda x, y: np.abs(x - y), 1e-4)


def _contraction(np, fixed_point):
    """A tree-valued fixed point x = (0.5 tanh(a x + b) + 0.3, ...) of matrix parameters."""
    def solve(a, b):
        step = lambda p: lambda x: (0.5 * np.tanh(p[0] @ x[0] + p[1]) + 0.3,  # noqa: E731
                                    0.5 * x[0] - 0.1 * x[1])
        distance = lambda x, y: np.sum(np.abs(x[0] - y[0])) + np.sum(np.abs(x[1] - y[1]))  # noqa
        x = fixed_point(step, (a, b), (np.zeros(3), np.ones(3)), distance, 1e-12)
        return np.sum(x[0] ** 2) + np.sum(np.sin(x[1]))
    return solve


@pytest.mark.parametrize("execution", ["interpret", "compile"])
def test_fixed_point_is_differentiated_implicitly_as_autograd(execution):
    from autograd.misc.fixed_points import fixed_point as a_fixed_point

    from jitgrad.misc.fixed_points import fixed_point

    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    ours, theirs = _sqrt_by_fixed_point(np, fixed_point), _sqrt_by_fixed_point(anp, a_fixed_point)
    with jitgrad.execution(execution):
        for order in range(3):
            assert ours(2.0) == pytest.approx(theirs(2.0), rel=1e-14)
            ours, theirs = jitgrad.grad(ours), autograd.grad(theirs)
    # the implicit derivative of the fixed point, not of the 120 iterations that reach it
    assert jitgrad.grad(_sqrt_by_fixed_point(np, fixed_point))(2.0) == pytest.approx(
        0.5 / 2 ** 0.5, rel=1e-3)

    a, b = numpy.arange(9.0).reshape(3, 3) / 10.0, numpy.array([0.1, -0.2, 0.3])
    with jitgrad.execution(execution):
        ga, gb = jitgrad.grad(_contraction(np, fixed_point), (0, 1))(a, b)
    ea, eb = autograd.grad(_contraction(anp, a_fixed_point), (0, 1))(a, b)
    numpy.testing.assert_allclose(ga, ea, rtol=1e-9, atol=1e-12)  # rounding: 1e-11 apart
    numpy.testing.assert_allclose(gb, eb, rtol=1e-9, atol=1e-12)
    # against central differences (converged to 1e-12, implicit and exact agree)
    f = _contraction(numpy, a_fixed_point)
    d = numpy.random.default_rng(0).standard_normal(a.shape)
    numeric = (f(a + 1e-6 * d, b) - f(a - 1e-6 * d, b)) / 2e-6
    assert numpy.sum(ga * d) == pytest.approx(numeric, rel=1e-6)


def test_fixed_point_has_no_gradient_with_respect_to_its_start():
    from jitgrad.misc.fixed_points import fixed_point

    def f(x0, a):
        return fixed_point(lambda a: lambda x: 0.5 * x + a, a, x0, lambda x, y: np.abs(x - y),
                           1e-12)

    g0, ga = jitgrad.grad(f, (0, 1))(3.0, 1.0)
    assert g0 == 0.0 and ga == pytest.approx(2.0, rel=1e-10)


def test_check_grads_passes_right_rules_and_catches_wrong_ones():
    from jitgrad.extend import defvjp as jg_defvjp
    from jitgrad.extend import primitive as jg_primitive
    from jitgrad.test_util import check_grads

    inputs = numpy.array([[0.52, 1.12, 0.77], [0.88, -1.08, 0.15], [0.52, 0.06, -1.30]])
    targets = numpy.array([True, True, False])

    def training_loss(weights):  # autograd's examples/logistic_regression.py
        preds = 0.5 * (np.tanh(np.dot(inputs, weights)) + 1)
        return -np.sum(np.log(preds * targets + (1 - preds) * (1 - targets)))

    check_grads(training_loss, modes=["rev"])(numpy.zeros(3))
    check_grads(training_loss)(numpy.array([0.1, -0.2, 0.3]))  # fwd and rev, order 2
    check_grads(lambda x, y: np.sin(x) * y, argnum=(0, 1))(numpy.ones(3), 2.0)

    @jg_primitive
    def square(x):
        return x ** 2

    jg_defvjp(square, lambda ans, x: lambda g: g * 3 * x)  # wrong: 3x instead of 2x
    with pytest.raises(AssertionError, match="VJP check"):
        check_grads(lambda x: np.sum(square(x)), modes=["rev"], order=1)(numpy.ones(2))
