"""Outputs of any tree shape: make_vjp, jacobian and elementwise_grad of functions returning
tuples, lists and dicts of arrays (autograd's make_vjp and elementwise_grad take them; jacobian
gives a tree of Jacobians, as JAX's does)."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import ArgumentError


def f(x):
    return (np.sin(x), {"a": x ** 2, "b": np.sum(x)}, [np.exp(x[0])])


x = numpy.array([0.5, 1.0, -0.3])


def test_make_vjp_of_a_tree_of_outputs():
    vjp, ans = jitgrad.make_vjp(f)(x)
    numpy.testing.assert_allclose(ans[0], numpy.sin(x))
    numpy.testing.assert_allclose(ans[1]["a"], x ** 2)
    assert ans[1]["b"] == pytest.approx(x.sum()) and isinstance(ans[2], list)
    w = numpy.array([1.0, -2.0, 0.5])
    g = vjp((w, {"a": 2 * w, "b": 3.0}, [4.0]))
    expected = numpy.cos(x) * w + 2 * x * 2 * w + 3.0 + numpy.array([4 * numpy.exp(x[0]), 0, 0])
    numpy.testing.assert_allclose(g, expected, rtol=1e-13)


def test_a_cotangent_of_another_structure_is_named():
    vjp, _ = jitgrad.make_vjp(f)(x)
    with pytest.raises(ArgumentError, match="structure of the output.*tuple of 3.*an array"):
        vjp(numpy.ones(3))
    with pytest.raises(ArgumentError, match="shape"):
        vjp((numpy.ones(2), {"a": numpy.ones(3), "b": 1.0}, [1.0]))


def test_jacobian_of_a_tree_is_a_tree_of_jacobians():
    jac = jitgrad.jacobian(f)(x)
    numpy.testing.assert_allclose(jac[0], numpy.diag(numpy.cos(x)))
    numpy.testing.assert_allclose(jac[1]["a"], numpy.diag(2 * x))
    numpy.testing.assert_allclose(jac[1]["b"], numpy.ones(3))
    numpy.testing.assert_allclose(jac[2][0], [numpy.exp(x[0]), 0, 0])


def test_elementwise_grad_sums_every_output():
    g = jitgrad.elementwise_grad(f)(x)
    numpy.testing.assert_allclose(
        g, numpy.cos(x) + 2 * x + 1 + numpy.array([numpy.exp(x[0]), 0, 0]), rtol=1e-13)


def test_make_vjp_of_a_tree_inside_a_trace():
    # grad of a function that uses make_vjp of a tree-valued function (second order).
    def outer(y):
        vjp, ans = jitgrad.make_vjp(f)(y)
        return np.sum(vjp((ans[0], {"a": ans[1]["a"], "b": 1.0}, [0.0])) ** 2)

    with jitgrad.execution("interpret"):
        g = jitgrad.grad(outer)(x)
    eps = 1e-6
    numeric = [(outer(x + eps * e) - outer(x - eps * e)) / (2 * eps) for e in numpy.eye(3)]
    numpy.testing.assert_allclose(g, numeric, rtol=1e-6)


def test_jacobian_by_columns_when_the_input_is_smaller():
    # 2 inputs, 6 outputs: two compiled JVP calls instead of six VJP calls; the same numbers.
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")

    def make(np):
        return lambda x: np.reshape(np.outer(np.sin(x), numpy.arange(3.0) + 1) * np.sum(x ** 2),
                                    (-1,))

    y = numpy.array([0.3, -0.7])
    numpy.testing.assert_allclose(jitgrad.jacobian(make(np))(y),
                                  autograd.jacobian(make(anp))(y), rtol=1e-14)
    tree = jitgrad.jacobian(lambda x: (np.sin(x) * 3, {"a": np.cos(x[0]) * numpy.ones(4)}))(y)
    numpy.testing.assert_allclose(tree[0], numpy.diag(3 * numpy.cos(y)))
    numpy.testing.assert_allclose(tree[1]["a"], [[-numpy.sin(y[0]), 0.0]] * 4)
    numpy.testing.assert_allclose(jitgrad.jacobian(lambda s: np.sin(s) * numpy.arange(3.0))(0.5),
                                  numpy.cos(0.5) * numpy.arange(3.0))
