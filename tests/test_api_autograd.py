"""The rest of autograd's API (make_vjp, elementwise_grad, jacobian, hessian,
hessian_vector_product) against autograd itself; and the docstring examples, run."""

import doctest

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import elementwise_grad, hessian, hessian_vector_product, jacobian, make_vjp

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402

rs = numpy.random.RandomState(3)
M = rs.randn(3, 4)


def vector_fn(np):
    return lambda x: np.tanh(np.dot(M, x)) * x[:3] + np.sum(x ** 2)


def scalar_fn(np):
    return lambda x: np.sum(np.exp(np.dot(M, x) * 0.3)) + np.sum(x[1:] * x[:-1]) ** 2


x4 = rs.randn(4)


def test_make_vjp():
    vjp, ans = make_vjp(vector_fn(np))(x4)
    avjp, aans = autograd.make_vjp(vector_fn(anp))(x4)
    numpy.testing.assert_allclose(ans, aans, rtol=1e-14)
    for g in (numpy.ones(3), rs.randn(3)):
        numpy.testing.assert_allclose(vjp(g), avjp(g), rtol=1e-12)


def test_elementwise_grad():
    x = rs.randn(5)
    numpy.testing.assert_allclose(elementwise_grad(lambda x: np.sin(x) * x)(x),
                                  autograd.elementwise_grad(lambda x: anp.sin(x) * x)(x),
                                  rtol=1e-14)


def test_jacobian_and_hessian():
    numpy.testing.assert_allclose(jacobian(vector_fn(np))(x4),
                                  autograd.jacobian(vector_fn(anp))(x4), rtol=1e-12)
    numpy.testing.assert_allclose(hessian(scalar_fn(np))(x4),
                                  autograd.hessian(scalar_fn(anp))(x4), rtol=1e-11)


def test_hessian_vector_product():
    v = rs.randn(4)
    numpy.testing.assert_allclose(hessian_vector_product(scalar_fn(np))(x4, v),
                                  autograd.hessian_vector_product(scalar_fn(anp))(x4, v),
                                  rtol=1e-11)


OFFSET = 1.0


def shifted(x):
    return np.sum((x - OFFSET) ** 2)


def test_wrappers_watch_the_users_globals():
    global OFFSET
    hvp = hessian_vector_product(lambda x: shifted(x) * np.sum(x))
    eg = elementwise_grad(shifted)
    x = numpy.array([1.0, 2.0])
    numpy.testing.assert_allclose(eg(x), 2 * (x - 1.0))
    before = hvp(x, numpy.ones(2))
    try:
        OFFSET = 3.0
        numpy.testing.assert_allclose(eg(x), 2 * (x - 3.0))
    finally:
        OFFSET = 1.0
    numpy.testing.assert_allclose(hvp(x, numpy.ones(2)), before)


@pytest.mark.parametrize("module", [jitgrad.api, jitgrad.control])
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0
