"""The API: argument structures, argnums, caching per signature, constants from the enclosing
scope, and derivatives of derivatives."""

import collections

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import grad, value_and_grad


def test_structures_come_back_as_they_went_in():
    def f(p):
        return np.sum(p["w"] ** 2) + p["b"][0] * p["b"][1][0] + np.sum(p["c"].a * 3.0)

    Pair = collections.namedtuple("Pair", "a b")
    p = {"w": numpy.arange(3.0), "b": (2.0, [5.0]), "c": Pair(numpy.ones(2), 7.0)}
    g = grad(f)(p)
    assert list(g) == ["w", "b", "c"]
    numpy.testing.assert_allclose(g["w"], 2 * numpy.arange(3.0))
    assert isinstance(g["b"], tuple) and isinstance(g["b"][1], list)
    assert g["b"][0] == 5.0 and g["b"][1][0] == 2.0 and isinstance(g["b"][0], float)
    assert isinstance(g["c"], Pair) and g["c"].b == 0.0
    numpy.testing.assert_allclose(g["c"].a, [3.0, 3.0])


def test_argnum_tuple_and_negative():
    def f(a, b, c):
        return np.sum(a * b) + c

    a, b = numpy.array([1.0, 2.0]), numpy.array([3.0, 4.0])
    ga, gc = grad(f, (0, 2))(a, b, 1.0)
    numpy.testing.assert_allclose(ga, b)
    assert gc == 1.0
    numpy.testing.assert_allclose(grad(f, -2)(a, b, 1.0), a)


def test_zero_d_and_integer_and_float32_arguments():
    f = lambda x: np.sum(x * x)  # noqa: E731
    g0 = grad(f)(numpy.array(3.0))
    assert numpy.shape(g0) == () and g0 == 6.0
    gi = grad(f)(numpy.array([1, 2]))
    assert gi.dtype == numpy.float64
    numpy.testing.assert_allclose(gi, [2.0, 4.0])
    g32 = grad(f)(numpy.array([1.0, 2.0], dtype=numpy.float32))
    assert g32.dtype == numpy.float32
    numpy.testing.assert_allclose(g32, [2.0, 4.0])
    assert grad(f)(3) == 6.0


def test_value_and_grad_value():
    v, g = value_and_grad(lambda x: np.sum(np.sin(x)))(numpy.array([0.5, 1.0]))
    assert v == pytest.approx(numpy.sin(0.5) + numpy.sin(1.0), rel=1e-15)
    numpy.testing.assert_allclose(g, numpy.cos([0.5, 1.0]), rtol=1e-15)


def test_one_compile_per_signature(builds):
    def loss(x):
        return np.sum(np.exp(x))

    gf = grad(loss)
    for _ in range(3):
        gf(numpy.ones(4))
        gf(numpy.ones(5))
    grad(loss)(numpy.ones(4))  # a new grad of the same function shares its kernels
    value_and_grad(loss)(numpy.ones(4))
    assert builds["loss"] == 2


def test_non_array_arguments_are_part_of_the_signature(builds):
    def loss(x, power, mode="sum"):
        y = x ** power
        return np.sum(y) if mode == "sum" else np.max(y)

    x = numpy.array([1.0, 2.0, 3.0])
    numpy.testing.assert_allclose(grad(loss)(x, 2), 2 * x)
    numpy.testing.assert_allclose(grad(loss)(x, 3), 3 * x ** 2)
    numpy.testing.assert_allclose(grad(loss)(x, 3, mode="max"), [0, 0, 27.0])
    numpy.testing.assert_allclose(grad(loss)(x, 2), 2 * x)
    assert builds["loss"] == 3


def test_array_arguments_not_differentiated_are_kernel_inputs(builds):
    def loss(w, data):
        return np.sum((data @ w) ** 2)

    w = numpy.array([1.0, -1.0])
    for scale in (1.0, 2.0):
        data = scale * numpy.array([[1.0, 2.0], [3.0, 5.0]])
        numpy.testing.assert_allclose(grad(loss)(w, data), 2 * data.T @ (data @ w))
    assert builds["loss"] == 1


def test_closure_array_changed_in_place_is_seen(builds):
    c = numpy.array([1.0, 2.0])

    def loss(x):
        return np.sum(c * x)

    gf = grad(loss)
    numpy.testing.assert_allclose(gf(numpy.zeros(2)), [1.0, 2.0])
    c[:] = [5.0, 7.0]
    numpy.testing.assert_allclose(gf(numpy.zeros(2)), [5.0, 7.0])
    assert builds["loss"] == 1


SCALE = 2.0
DATA = numpy.array([1.0, 2.0])


def scaled_loss(x):
    return SCALE * np.sum(DATA * x)


def test_rebinding_a_global_is_never_stale():
    global SCALE, DATA
    gf = grad(scaled_loss)
    numpy.testing.assert_allclose(gf(numpy.zeros(2)), [2.0, 4.0])
    try:
        SCALE = 3.0
        numpy.testing.assert_allclose(gf(numpy.zeros(2)), [3.0, 6.0])
        DATA = numpy.array([1.0, 1.0])
        numpy.testing.assert_allclose(gf(numpy.zeros(2)), [3.0, 3.0])
    finally:
        SCALE, DATA = 2.0, numpy.array([1.0, 2.0])


def test_inputs_are_not_modified():
    def loss(p):
        w, b = p
        return np.sum(np.tanh(w[1:] * b) ** 2) + np.sum(w)

    w, b = numpy.array([0.1, 0.2, 0.3]), numpy.array([1.0, 2.0])
    w0, b0 = w.copy(), b.copy()
    g = grad(loss)((w, b))
    numpy.testing.assert_array_equal(w, w0)
    numpy.testing.assert_array_equal(b, b0)
    g[0][:] = 100.0  # the gradient is the caller's own array
    numpy.testing.assert_array_equal(w, w0)


def test_gradient_that_is_a_constant_is_a_fresh_array():
    c = numpy.array([1.0, 2.0])
    g = grad(lambda x: np.sum(x * c))(numpy.zeros(2))
    g[0] = 99.0
    assert c[0] == 1.0


def test_nan_and_inf_propagate():
    g = grad(lambda x: np.sum(np.log(x)))(numpy.array([0.0, -1.0, 2.0]))
    assert numpy.isinf(g[0]) and numpy.isnan(grad(lambda x: np.sum(np.sqrt(x)))(
        numpy.array([-1.0]))[0])
    v, _ = value_and_grad(lambda x: np.sum(x / 0.0))(numpy.array([1.0]))
    assert numpy.isinf(v)


def test_second_derivative_of_a_scalar_function():
    f = lambda x: x ** 3 * np.sin(x)  # noqa: E731
    d2 = grad(grad(f))(0.7)
    expected = 6 * 0.7 * numpy.sin(0.7) + 6 * 0.7 ** 2 * numpy.cos(0.7) - 0.7 ** 3 * numpy.sin(0.7)
    assert d2 == pytest.approx(expected, rel=1e-12)


def test_hessian_vector_product_by_grad_of_grad():
    def f(x):
        return np.sum(np.exp(x) * x[::-1])

    x, v = numpy.array([0.1, 0.2, 0.3]), numpy.array([1.0, -2.0, 0.5])
    hvp = grad(lambda x, v: np.sum(grad(f)(x) * v))(x, v)
    e = numpy.exp(x)
    H = numpy.diag(e * x[::-1])
    for i in range(3):
        H[i, 2 - i] += e[i]
        H[2 - i, i] += e[i]
    numpy.testing.assert_allclose(hvp, H @ v, rtol=1e-12)


def test_explain_shows_ir_and_kernel():
    e = jitgrad.explain(lambda x: np.sum(np.exp(x)), numpy.ones(3))
    assert "exp x0" in str(e.ir)
    # The size is the kernel's argument, not part of its code: one kernel serves every size.
    assert "@numba.njit" in e.source and "for i0 in range(N0):" in e.source
    assert e.lifted == {"N0": 3} and "lifted, at this signature: N0=3" in str(e)
    assert jitgrad.explain(lambda x: np.sum(np.exp(x)), numpy.ones(4)).source == e.source
    with open(e.path) as f:
        assert f.read() == e.source


def test_float32_arguments_are_traced_and_compiled_as_float32():
    f = lambda x: np.sum(np.tanh(x) * x + x ** 2)  # noqa: E731
    x = numpy.linspace(-1.0, 1.0, 7, dtype=numpy.float32)
    e = jitgrad.explain(f, x)
    assert "x0:f32[7]" in str(e) and "f64[7]" not in str(e)
    g = grad(f)(x)
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(g, grad(f)(x.astype(numpy.float64)), rtol=1e-6)


@pytest.mark.parametrize("index", [(Ellipsis, slice(0, 2)), (0, Ellipsis), (Ellipsis,),
                                   (None, Ellipsis, 1), (1, Ellipsis, None, 2)],
                         ids=["e-slice", "int-e", "e", "none-e-int", "int-e-none-int"])
def test_ellipsis_in_basic_indexing(index):
    # `x[..., :2]` once padded the index twice (IndexError on a 2-D array, wrong on 3-D).
    x = numpy.arange(24.0).reshape(2, 3, 4)
    g = grad(lambda x: np.sum(x[index] * x[index]))(x)
    expected = numpy.zeros_like(x)
    expected[index] += 2 * x[index]
    numpy.testing.assert_array_equal(g, expected)
    numpy.testing.assert_array_equal(grad(lambda y: np.sum(y[..., :2] ** 2))(x[0]),
                                     numpy.where(numpy.arange(4) < 2, 2 * x[0], 0.0))


def test_sum_of_small_integers_widens_as_numpy_does():
    a = numpy.arange(4, dtype=numpy.int32)
    text = str(jitgrad.explain(lambda x, a: np.sum(x * np.sum(a)), 1.0, a))
    assert "x2:i64[] = reduce_sum" in text, text
    assert grad(lambda x, a: np.sum(x * np.sum(a)))(1.0, a) == 6.0


def test_integer_matrix_products_compile():
    from jitgrad.primitives import Prim
    from jitgrad.trace import bind

    def f(x):
        k = x.astype(numpy.int64)
        return np.sum(bind(Prim.matmul, k, k.T) * x[0, 0])

    x = numpy.full((2, 3), 2.0)
    # d/dx00 of x00 * sum(k k^T) with k fixed (integers carry no gradient): sum(k k^T) = 48
    expected = numpy.zeros((2, 3))
    expected[0, 0] = 48.0
    numpy.testing.assert_array_equal(grad(f)(x), expected)


def test_a_number_argument_that_changes_becomes_a_kernel_argument():
    # autograd's examples pass the iteration number to the loss: one compile, not one per call.
    def loss(x, t):
        return np.sum(x ** 2) * (1 + 0.1 * t)

    g = grad(loss)
    x = numpy.ones(3)
    for t in range(6):
        numpy.testing.assert_allclose(g(x, t), 2 * x * (1 + 0.1 * t))
    assert len(g._jitgrad._entries) == 2  # t=0 as a constant, then t as a kernel argument

    def prefix(x, n):  # n gives a shape: it stays part of the signature
        return np.sum(x[:n] ** 2)

    gp = grad(prefix)
    for n in (1, 2, 3, 2):
        numpy.testing.assert_array_equal(gp(x, n), [2.0] * n + [0.0] * (3 - n))
    assert len(gp._jitgrad._entries) == 3

    def branch(x, scale):  # a Python `if` on it is compiled
        if scale > 1.5:
            return np.sum(x * scale)
        return np.sum(x ** 2)

    gb = grad(branch)
    assert [gb(x, s)[0] for s in (1.0, 2.0, 1.2, 3.0)] == [2.0, 2.0, 2.0, 3.0]


def test_signatures_whose_traces_are_one_computation_share_an_entry(builds):
    # autograd's GAN and VAE pick a minibatch with `iter % num_batches`: the iteration count
    # stays in the signature (it gives a slice), yet only num_batches computations exist.
    data = numpy.arange(12.0).reshape(6, 2)

    def loss(w, it):
        i = it % 3
        return np.sum(np.tanh(data[2 * i:2 * i + 2] @ w) ** 2)

    g = grad(loss)
    w = numpy.array([0.3, -0.2])
    for it in range(12):
        batch = data[2 * (it % 3):2 * (it % 3) + 2]
        t = numpy.tanh(batch @ w)
        numpy.testing.assert_allclose(g(w, it), batch.T @ (2 * t * (1 - t ** 2)), rtol=1e-13,
                                   atol=1e-15)
    assert builds["loss"] == 3  # traced at every new `it`, differentiated and compiled thrice

    # Traces equal but for a literal's sign, type or a constant's identity are not shared.
    signs = [0.0, -0.0]
    gs = grad(lambda x, k: np.sum(x * signs[k]))
    assert [bool(numpy.signbit(gs(numpy.ones(1), k)[0])) for k in (0, 1, 0, 1)] == [
        False, True, False, True]
    arrays = [numpy.ones(2), numpy.full(2, 3.0)]
    ga = grad(lambda x, k: np.sum(x * arrays[k]))
    assert [ga(numpy.ones(2), k).tolist() for k in (0, 1, 0)] == [[1, 1], [3, 3], [1, 1]]
    ints = [numpy.ones(2, numpy.int64), numpy.ones(2)]
    gi = grad(lambda x, k: np.sum(x * x * ints[k]))
    assert gi(numpy.ones(2), 0).dtype == gi(numpy.ones(2), 1).dtype == numpy.float64


def test_a_kernel_too_long_to_compile_runs_interpreted(monkeypatch):
    from jitgrad import api

    monkeypatch.setattr(api, "MAX_KERNEL_LINES", 10)

    def long_loss(x):
        return np.sum(np.sin(x) * np.exp(x))

    x = numpy.linspace(0.0, 1.0, 5)
    with pytest.warns(jitgrad.JitgradWarning, match="lines of generated code.*interpreter"):
        g = grad(long_loss)(x)
    numpy.testing.assert_allclose(g, numpy.exp(x) * (numpy.sin(x) + numpy.cos(x)), rtol=1e-14)

    # Over 4 statements per allowed line, it is not even scheduled (fluidsim: 2.4 s saved).
    from jitgrad import fuse

    scheduled = []
    real = fuse.schedule
    monkeypatch.setattr(fuse, "schedule", lambda graph: scheduled.append(graph) or real(graph))
    monkeypatch.setattr(api, "MAX_KERNEL_LINES", 2)

    def longer_loss(x):
        return np.sum(np.sin(x) * np.exp(x) + np.cos(x) ** 2)

    with pytest.warns(jitgrad.JitgradWarning, match="lines of generated code.*interpreter"):
        g = grad(longer_loss)(x)
    numpy.testing.assert_allclose(g, numpy.exp(x) * (numpy.sin(x) + numpy.cos(x))
                                  - 2 * numpy.sin(x) * numpy.cos(x), rtol=1e-14)
    assert not scheduled


def test_explain_draws_the_computation_with_values_and_adjoints():
    """The seeds' picture: sin(xy) + cos(xy) with values forward and adjoints backward."""
    import re

    def f(x, y):
        return np.sin(x * y) + np.cos(x * y)

    picture = jitgrad.explain(f, 1.5, 0.5, argnum=(0, 1)).graph()
    text = getattr(picture, "source", str(picture))
    assert text.startswith('digraph "f"') and text.count("->") == 9  # 8 operands read, 1 output
    labels = dict(re.findall(r'(x\d+) \[label="([^"]*)"', text))
    x, y = 1.5, 0.5
    dx = y * (numpy.cos(x * y) - numpy.sin(x * y))
    assert f"adjoint {dx:.4g}" in labels["x0"] and "value 1.5" in labels["x0"]
    assert f"value {numpy.sin(x * y):.4g}" in labels["x3"] and labels["x3"].endswith("adjoint 1")
    # arrays show their types, no numbers; without adjoints, none are computed
    text = str(jitgrad.explain(lambda v: np.sum(v ** 2), numpy.ones(3)).graph(adjoints=False))
    assert "float64[3]" in text and "adjoint" not in text
