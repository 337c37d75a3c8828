"""jitgrad.scipy.integrate.odeint: values against SciPy's odeint, gradients with respect to y0, t
and args (arrays, numbers and a tree of them) against central differences and against autograd,
forward sensitivities (make_jvp, jacobian by columns), the errors (second order, a traced value
read from func's closure, args not a tuple), and a compiled neural ODE as in autograd's
examples/ode_net.py.  Most tests run interpreted (no Numba compile); `test_compiled_*` compile."""

from __future__ import annotations

import doctest

import numpy
import pytest
import scipy.integrate as si

import jitgrad
import jitgrad.numpy as np
import jitgrad.scipy.integrate as jsi
from jitgrad.errors import TracingError
from jitgrad.ops import REGISTRY
from jitgrad.scipy.integrate import odeint

try:
    from .gradcheck import check_grads
except ImportError:
    from gradcheck import check_grads

# The solver's own error moves central differences by about tol / eps: tight tolerances in the
# solves, a wide step in the differences.
TIGHT = dict(rtol=1e-12, atol=1e-12)
FD = dict(eps=1e-4, rtol=1e-6, atol=1e-7)


pytestmark = pytest.mark.usefixtures("interpret_unless_compiled")


def R(*shape, seed=0):  # noqa: N802
    return numpy.random.default_rng(seed).standard_normal(shape)


def cubic(y, t, A, b):  # noqa: N803  (non-autonomous, so that t's gradient has every term)
    return np.dot(y ** 3, A) * np.cos(t) + b


Y0, T, A, B = 0.6 * R(3), numpy.linspace(0.1, 0.6, 4), 0.5 * R(3, 3, seed=1), R(3, seed=2)
W = R(4, 3, seed=3)


def cubic_loss(y0, t, a, b):
    return np.sum(odeint(cubic, y0, t, (a, b), **TIGHT) * W)


def test_values_match_scipy():
    expected = si.odeint(cubic, Y0, T, args=(A, B), **TIGHT)
    numpy.testing.assert_array_equal(odeint(cubic, Y0, T, (A, B), **TIGHT), expected)
    _, traced = jitgrad.make_vjp(lambda y0: odeint(cubic, y0, T, (A, B), **TIGHT))(Y0)
    numpy.testing.assert_array_equal(traced, expected)
    # SciPy's own on plain arrays, full_output included.
    out, info = odeint(cubic, Y0, T, (A, B), full_output=True)
    numpy.testing.assert_array_equal(out, si.odeint(cubic, Y0, T, args=(A, B)))
    assert "message" in info


def test_grads_y0_t_args():
    check_grads(cubic_loss, Y0, T, A, B, argnum=(0, 1, 2, 3), **FD)


def test_grads_match_autograd():
    autograd = pytest.importorskip("autograd")
    import autograd.numpy as anp
    from autograd.builtins import tuple as boxed_tuple
    from autograd.scipy.integrate import odeint as autograd_odeint

    def a_cubic(y, t, a, b):
        return anp.dot(y ** 3, a) * anp.cos(t) + b

    def a_loss(y0, t, a, b):
        return anp.sum(autograd_odeint(a_cubic, y0, t, boxed_tuple((a, b)), **TIGHT) * W)

    ours = jitgrad.grad(cubic_loss, argnum=(0, 1, 2, 3))(Y0, T, A, B)
    theirs = autograd.grad(a_loss, argnum=(0, 1, 2, 3))(Y0, T, A, B)
    for g, h in zip(ours, theirs):
        numpy.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-12)


def tree_dynamics(t, y, params, power, rate):
    # tfirst=True order; params is a tree, power an int passed as it is, rate a float.
    (w1, b1), extra = params["layers"][0], params["extra"]
    return rate * np.tanh(np.dot(w1, y ** power) + b1) - extra * y


def test_grads_tree_of_args():
    params = {"layers": [(0.5 * R(2, 2, seed=4), R(2, seed=5))], "extra": 0.3}
    y0, t = numpy.array([0.5, -0.2]), numpy.array([0.0, 0.4, 1.0])

    def loss(params, y0, t, rate):
        ys = odeint(tree_dynamics, y0, t, (params, 2, rate), tfirst=True, **TIGHT)
        return np.sum(ys ** 2)

    expected = si.odeint(tree_dynamics, y0, t, (params, 2, 1.5), tfirst=True, **TIGHT)
    numpy.testing.assert_array_equal(
        jitgrad.make_vjp(lambda p: odeint(tree_dynamics, y0, t, (p, 2, 1.5), tfirst=True,
                                          **TIGHT))(params)[1], expected)
    check_grads(loss, params, y0, t, 1.5, argnum=(0, 1, 2, 3), **FD)


def test_grads_func_returning_a_list():
    def oscillator(y, t, w):
        return [y[1], -w ** 2 * y[0]]  # SciPy takes a list

    def first(w):  # cos(w t), of derivative -t sin(w t)
        return np.sum(odeint(oscillator, numpy.array([1.0, 0.0]), T - T[0], (w,), **TIGHT)[:, 0])

    numpy.testing.assert_allclose(jitgrad.grad(first)(2.0),
                                  -numpy.sum((T - T[0]) * numpy.sin(2.0 * (T - T[0]))),
                                  rtol=1e-9)


def test_grads_scalar_y0_and_one_time():
    def decay(y, t, k):
        return -k * y

    def loss(y0, k):
        return np.sum(odeint(decay, y0, T, (k,), **TIGHT) ** 2)

    check_grads(loss, 0.8, 0.7, argnum=(0, 1), **FD)
    # y(t) = y0 exp(-k (t - t0)): d/dk sum(y) = -sum((t - t0) y)
    numpy.testing.assert_allclose(
        jitgrad.grad(lambda k: np.sum(odeint(decay, 0.8, T, (k,), **TIGHT)))(0.7),
        -numpy.sum((T - T[0]) * 0.8 * numpy.exp(-0.7 * (T - T[0]))), rtol=1e-9)
    # One time: the output is y0 itself.
    assert jitgrad.grad(lambda y0: np.sum(odeint(decay, y0, T[:1], (0.7,)) * W[0]))(Y0) \
        .tolist() == W[0].tolist()


def test_forward_sensitivities():
    def f(y0, t, a):
        return odeint(cubic, y0, t, (a, B), **TIGHT)

    # jacobian by columns (12 outputs, 3 inputs): a tangent per column.
    jac = jitgrad.jacobian(lambda y0: f(y0, T, A))(Y0)
    eps = 1e-4
    numeric = numpy.stack([(f(Y0 + eps * e, T, A) - f(Y0 - eps * e, T, A)) / (2 * eps)
                           for e in numpy.eye(3)], axis=-1)
    numpy.testing.assert_allclose(jac, numeric, rtol=1e-6, atol=1e-7)
    dt, da = R(4, seed=6), R(3, 3, seed=7)
    for g, x, v in [(lambda t: f(Y0, t, A), T, dt), (lambda a: f(Y0, T, a), A, da)]:
        value, tangent = jitgrad.make_jvp(g)(x)(v)
        numpy.testing.assert_array_equal(value, g(x))
        numpy.testing.assert_allclose(tangent, (g(x + eps * v) - g(x - eps * v)) / (2 * eps),
                                      rtol=1e-6, atol=1e-7)


def test_second_order_is_an_error():
    def loss(y0):
        return np.sum(odeint(cubic, y0, T, (A, B)) ** 2)

    with pytest.raises(TracingError, match="second derivatives through odeint"):
        jitgrad.grad(lambda y0: np.sum(jitgrad.grad(loss)(y0) ** 2))(Y0)
    with pytest.raises(TracingError, match="second derivatives through odeint"):
        jitgrad.hessian(loss)(Y0)


def test_errors():
    with pytest.raises(TracingError, match="'k' from its enclosing scope"):
        jitgrad.grad(lambda k: np.sum(odeint(lambda y, t: -k * y, Y0, T)))(0.5)
    with pytest.raises(TypeError, match="tuple"):
        odeint(cubic, Y0, T, [A, B])
    with pytest.raises(TracingError, match="full_output"):
        jitgrad.grad(lambda y0: np.sum(odeint(cubic, y0, T, (A, B), full_output=True)[0]))(Y0)
    with pytest.raises(TracingError, match="scipy.integrate.quad is not supported"):
        jitgrad.grad(lambda a: jsi.quad(lambda x: x, 0.0, a)[0])(1.0)
    assert jsi.quad(lambda x: x, 0.0, 1.0)[0] == pytest.approx(0.5)
    assert REGISTRY["scipy.integrate"]["odeint"] is odeint


def test_docstring_example_runs():
    failures, tried = doctest.testmod(jsi, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


def test_inputs_unmodified():
    y0, t, a, b = Y0.copy(), T.copy(), A.copy(), B.copy()
    jitgrad.grad(cubic_loss, argnum=(0, 1, 2, 3))(y0, t, a, b)
    for x, y in [(y0, Y0), (t, T), (a, A), (b, B)]:
        numpy.testing.assert_array_equal(x, y)


# --- compiled -------------------------------------------------------------------------------------


def relu_net(y, t, params):
    for w, b in params:
        out = np.dot(y, w) + b
        y = np.maximum(0.0, out)
    return out


def test_compiled_neural_ode():
    # autograd's examples/ode_net.py, small: params is a list of (W, b) tuples in a 1-tuple.
    rs = numpy.random.RandomState(0)
    params = [(rs.randn(2, 8) * 0.5, rs.randn(8) * 0.5), (rs.randn(8, 2) * 0.5, rs.randn(2) * 0.5)]
    y0, t = numpy.array([2.0, 0.0]), numpy.linspace(0.0, 0.5, 5)
    target = si.odeint(lambda y, t: numpy.dot(y ** 3, [[-0.1, 2.0], [-2.0, -0.1]]), y0, t)

    def loss(params, y0, t):
        return np.mean(np.abs(odeint(relu_net, y0, t, (params,), **TIGHT) - target))

    value, g = check_grads(loss, params, y0, t, argnum=(0, 1, 2), **FD)
    with jitgrad.execution("interpret"):
        value_i, g_i = jitgrad.value_and_grad(loss, argnum=(0, 1, 2))(params, y0, t)
    assert value == pytest.approx(value_i, rel=1e-14)
    for x, y in zip(jitgrad.misc.flatten(g)[0], jitgrad.misc.flatten(g_i)[0]):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-12)


def decay(y, t, k):
    return -k * y


def test_compiled_tangent():
    # The tangent op through generated kernels: a column of the Jacobian with respect to y0.
    y0, v = numpy.array([1.0, 2.0]), numpy.array([0.6, -0.8])
    _, column = jitgrad.make_jvp(lambda y0: odeint(decay, y0, T, (0.7,)))(y0)(v)
    numpy.testing.assert_allclose(column, numpy.exp(-0.7 * (T - T[0]))[:, None] * v, rtol=1e-6)
