"""Row products (fuse.row_products): `X @ w` and `X.T @ v` of one matrix computed in the nest
over X's rows, one pass over X.  Each case is checked against NumPy's own products, and
against the kernel with every product left to BLAS (JITGRAD_ROW_PRODUCTS=0)."""

import numba
import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import codegen

RNG = numpy.random.default_rng(7)
X = RNG.standard_normal((300, 40))
T = (RNG.uniform(size=300) < 0.5) * 1.0
W = 0.1 * RNG.standard_normal(40)


def logistic(w):  # autograd's example: np.dot of a matrix and a 1-D vector
    p = 0.5 * (np.tanh(np.dot(X, w) / 2.0) + 1.0)
    return -np.sum(np.log(p * T + (1.0 - p) * (1.0 - T)))


def logistic_grad(w):
    z = X @ w
    p = 1.0 / (1.0 + numpy.exp(-z))
    return X.T @ (p - T)


def _blas_only(monkeypatch, f, *args):
    """f's value and gradient from a fresh kernel with every product a BLAS call."""
    monkeypatch.setenv("JITGRAD_ROW_PRODUCTS", "0")
    out = jitgrad.value_and_grad(lambda *a: f(*a))(*args)
    monkeypatch.delenv("JITGRAD_ROW_PRODUCTS")
    return out


def test_a_linear_models_products_share_one_pass_over_the_matrix(monkeypatch):
    source = jitgrad.explain(logistic, W).source
    assert source.count("row by row") >= 2 and "runtime.matmul" not in source, source
    value, g = jitgrad.value_and_grad(logistic)(W)
    numpy.testing.assert_allclose(g, logistic_grad(W), rtol=1e-11)
    blas_value, blas_g = _blas_only(monkeypatch, logistic, W)
    assert value == pytest.approx(blas_value, rel=1e-13)
    numpy.testing.assert_allclose(g, blas_g, rtol=1e-12, atol=1e-13)


def test_column_vectors_and_two_gradients_of_one_matrix(monkeypatch):
    """w as (n, 1), its product made a vector; two products of X and two of X.T, all four in
    the one pass."""
    def f(w, b):
        z = np.reshape(X @ w, (300,)) + b
        return np.sum((z - T) ** 2) + np.sum(np.sin(np.dot(X, w[:, 0] * 2.0)))

    w, b = W[:, None], 0.3
    assert jitgrad.explain(f, w, b).source.count("row by row") == 4
    gw, gb = jitgrad.grad(f, (0, 1))(w, b)
    z = (X @ w)[:, 0] + b
    expected = (X.T @ (2 * (z - T)) + 2.0 * (X.T @ numpy.cos(X @ (W * 2.0))))[:, None]
    numpy.testing.assert_allclose(gw, expected, rtol=1e-11)
    assert gb == pytest.approx(numpy.sum(2 * (z - T)), rel=1e-11)
    blas = jitgrad.grad(lambda w, b: f(w, b), (0, 1))
    monkeypatch.setenv("JITGRAD_ROW_PRODUCTS", "0")
    numpy.testing.assert_allclose(blas(w, b)[0], gw, rtol=1e-12, atol=1e-12)


def test_a_product_read_at_other_rows_is_stored_and_read_back():
    """z read reversed and normalised by its sum: not at the row being computed, so the
    second product waits for the full vector (a later nest), and the result is still exact."""
    def f(w):
        z = X @ w
        s = np.exp(z - np.max(z))
        return np.sum(z[::-1] * z) + np.log(np.sum(s))

    g = jitgrad.grad(f)(W)
    z = X @ W
    s = numpy.exp(z - z.max())
    top = numpy.arange(z.size) == numpy.argmax(z)  # log(sum(s)) is logsumexp(z) - max(z)
    expected = X.T @ (2 * z[::-1] + s / s.sum() - top)
    numpy.testing.assert_allclose(g, expected, rtol=1e-11)


def test_large_matrices_run_their_rows_in_chunks_with_the_same_bits_on_one_thread():
    x = RNG.standard_normal((3000, 50))
    t = (RNG.uniform(size=3000) < 0.5) * 1.0

    def f(w):
        z = np.dot(x, w)
        return np.sum(np.logaddexp(0.0, z) - t * z)

    w = RNG.standard_normal(50) * 0.1
    source = jitgrad.explain(f, w).source
    if not codegen.parallel_enabled():
        pytest.skip("one core: no parallel nests")
    assert "numba.prange" in source and "row by row" in source, source
    g = jitgrad.grad(f)(w)
    z = x @ w
    numpy.testing.assert_allclose(g, x.T @ (1 / (1 + numpy.exp(-z)) - t), rtol=1e-11)
    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    try:  # the chunks depend only on the sizes, so the rounding does too
        assert numpy.array_equal(jitgrad.grad(lambda w: f(w))(w), g)
    finally:
        numba.set_num_threads(saved)


def test_not_for_matrix_products_integers_or_a_single_row():
    m = RNG.standard_normal((40, 3))
    assert "row by row" not in jitgrad.explain(lambda w: np.sum(np.tanh(X @ w) @ m.T),
                                               RNG.standard_normal((40, 3))).source
    one = X[:1]
    src = jitgrad.explain(lambda w: np.sum(np.tanh(one @ w)), W).source
    assert "row by row" not in src
    numpy.testing.assert_allclose(jitgrad.grad(lambda w: np.sum(np.tanh(one @ w)))(W),
                                  one.T @ (1 - numpy.tanh(one @ W) ** 2), rtol=1e-12)
