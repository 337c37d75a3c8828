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


# --- jacobian and hessian as one kernel (a loop over the rows), nestable ------------------------

W34 = numpy.random.default_rng(3).standard_normal((4, 3))


def _mixed(np):
    return lambda x: np.tanh(np.dot(W34, x)) * np.sum(x ** 2)


@pytest.mark.parametrize("execution", ["interpret", "compile"])
def test_jacobian_of_a_jacobian_and_a_gradient_through_one(execution):
    x = numpy.array([0.3, -0.7, 1.2])
    with jitgrad.execution(execution):
        j2 = jacobian(jacobian(_mixed(np)))(x)
        g = jitgrad.grad(lambda x: np.sum(jacobian(_mixed(np))(x) ** 2))(x)
        h = hessian(lambda x: np.sum(np.sin(x) * np.cumsum(x)) ** 2)(x)
    numpy.testing.assert_allclose(j2, autograd.jacobian(autograd.jacobian(_mixed(anp)))(x),
                                  rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(
        g, autograd.grad(lambda x: anp.sum(autograd.jacobian(_mixed(anp))(x) ** 2))(x),
        rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(
        h, autograd.hessian(lambda x: anp.sum(anp.sin(x) * anp.cumsum(x)) ** 2)(x),
        rtol=1e-12, atol=1e-14)


def test_jacobian_of_tree_outputs_scalars_and_empty_arrays():
    x = numpy.array([0.3, -0.7, 1.2])
    out = jacobian(lambda x: {"v": np.sin(x), "s": np.sum(x ** 3),
                              "m": np.outer(x, x[:2]), "e": x[:0] * 2.0})(x)
    numpy.testing.assert_allclose(out["v"], numpy.diag(numpy.cos(x)), rtol=1e-14)
    numpy.testing.assert_allclose(out["s"], 3 * x ** 2, rtol=1e-14)
    numpy.testing.assert_allclose(out["m"], autograd.jacobian(lambda x: anp.outer(x, x[:2]))(x),
                                  rtol=1e-14)
    assert out["e"].shape == (0, 3)
    assert jacobian(lambda t: np.sin(t) * 2.0)(0.5) == pytest.approx(2 * numpy.cos(0.5))
    g32 = jacobian(lambda x: x * x)(x.astype(numpy.float32))
    assert g32.dtype == numpy.float32


def test_hessian_made_again_reuses_its_kernel(monkeypatch):
    """A Newton loop calling hessian(f)(x) at every step compiles once."""
    from jitgrad import compile as jg_compile

    def f(x):
        return np.sum(np.exp(0.1 * x) * x ** 2)

    x = numpy.linspace(-1.0, 1.0, 5)
    first = hessian(f)(x)
    numpy.testing.assert_allclose(jacobian(jitgrad.grad(f))(x), first, rtol=1e-14)
    loads = []
    real_load = jg_compile.load
    monkeypatch.setattr(jg_compile, "load", lambda source: loads.append(1) or real_load(source))
    for step in range(3):
        numpy.testing.assert_array_equal(hessian(f)(x), first)
        numpy.testing.assert_array_equal(jacobian(jitgrad.grad(f))(x), first)
    assert not loads  # made again, each finds its kernel
    numpy.testing.assert_allclose(
        first, autograd.hessian(lambda x: anp.sum(anp.exp(0.1 * x) * x ** 2))(x), rtol=1e-13)
