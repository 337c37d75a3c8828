"""autograd's other derivative operators (jitgrad/operators.py), against autograd's own."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
ado = pytest.importorskip("autograd.differential_operators")

X = numpy.array([0.3, -0.7, 1.2])
V = numpy.array([1.0, 2.0, -1.0])


def vector_fn(np):
    return lambda x: np.sin(x) * np.sum(x ** 2)


def scalar_fn(np):
    return lambda x: np.sum(np.sin(x) * x ** 3)


def close(a, b):
    numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


def test_make_jvp_and_deriv():
    with jitgrad.execution("interpret"):
        value, tangent = jitgrad.make_jvp(vector_fn(np))(X)(V)
        d = jitgrad.deriv(lambda x: np.sin(x) * x)(0.5)
    close(value, vector_fn(numpy)(X))
    close(tangent, autograd.make_jvp(vector_fn(anp))(X)(V)[1])
    assert d == pytest.approx(autograd.deriv(lambda x: anp.sin(x) * x)(0.5), rel=1e-14)


def test_make_jvp_compiled_once_for_every_tangent():
    jvp = jitgrad.make_jvp(vector_fn(np))(X)
    expected = autograd.make_jvp(vector_fn(anp))(X)
    for v in (V, 2 * V, numpy.eye(3)[1]):
        close(jvp(v)[1], expected(v)[1])


def test_hessian_products():
    with jitgrad.execution("interpret"):
        hvp, g = jitgrad.make_hvp(scalar_fn(np))(X)
        htp = jitgrad.hessian_tensor_product(scalar_fn(np))(X, V)
    expected = ado.make_hvp(scalar_fn(anp))(X)[0](V)
    close(hvp(V), expected)
    close(htp, expected)
    close(g, autograd.grad(scalar_fn(anp))(X))


def test_vector_jacobian_product_and_ggnvp():
    with jitgrad.execution("interpret"):
        vjp = jitgrad.vector_jacobian_product(vector_fn(np))(X, V)
        ggn = jitgrad.make_ggnvp(vector_fn(np))(X)(V)
    close(vjp, ado.vector_jacobian_product(vector_fn(anp))(X, V))
    close(ggn, ado.make_ggnvp(vector_fn(anp))(X)(V))


def test_grad_and_aux_and_grad_named():
    with jitgrad.execution("interpret"):
        g, aux = jitgrad.grad_and_aux(lambda x: (np.sum(x ** 2), {"m": np.max(x)}))(X)
    close(g, 2 * X)
    assert aux == {"m": 1.2}
    assert jitgrad.grad_named(lambda a, b: a * b ** 2, "b")(2.0, 3.0) == 12.0
    with pytest.raises(jitgrad.ArgumentError, match="no argument named 'c'"):
        jitgrad.grad_named(lambda a, b: a * b, "c")
