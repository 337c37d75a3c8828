"""`jitgrad.jit`: a function compiled as it is, without derivatives, keyed and cached like a
gradient, and transparent to `grad` around it."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

X = numpy.linspace(-1.0, 2.0, 5)


def test_values_and_structures_are_the_functions(loads):
    def f(p, scale):
        return {"total": np.sum(np.tanh(p["w"]) * scale), "parts": [p["w"] * p["b"], p["b"]]}

    p = {"w": X, "b": 3.0}
    out = jitgrad.jit(f)(p, 2.0)
    assert list(out) == ["total", "parts"] and isinstance(out["parts"], list)
    assert out["total"] == pytest.approx(numpy.sum(numpy.tanh(X) * 2.0), rel=1e-14)
    numpy.testing.assert_allclose(out["parts"][0], X * 3.0, rtol=1e-15)
    assert out["parts"][1] == 3.0
    assert len(loads) == 1 and "values of f, compiled by jit" in loads[0]


def test_one_kernel_per_signature_and_a_new_one_for_a_new_dtype(loads, builds):
    def f(x):
        return np.sum(np.exp(x) * x)

    jf = jitgrad.jit(f)
    for n in (5, 5, 6, 7):
        assert jf(numpy.linspace(0, 1, n)) == pytest.approx(
            numpy.sum(numpy.exp(numpy.linspace(0, 1, n)) * numpy.linspace(0, 1, n)), rel=1e-14)
    assert builds["f"] == 3  # a repeated signature is not traced again
    assert len(set(loads)) == 1  # sizes are kernel arguments: one kernel for every length
    assert jf(numpy.linspace(0, 1, 5, dtype=numpy.float32)) == pytest.approx(
        numpy.sum(numpy.exp(numpy.linspace(0, 1, 5)) * numpy.linspace(0, 1, 5)), rel=1e-6)
    assert len(set(loads)) == 2


def test_no_stale_result_after_a_rebound_global():
    global SCALE
    SCALE = 2.0
    jf = jitgrad.jit(lambda x: np.sum(x) * SCALE)
    assert jf(X) == pytest.approx(2.0 * X.sum())
    SCALE = 5.0
    assert jf(X) == pytest.approx(5.0 * X.sum())


def test_the_inputs_are_neither_modified_nor_returned():
    x = X.copy()
    out = jitgrad.jit(lambda a: (a, a[1:], a * 1.0))(x)
    numpy.testing.assert_array_equal(x, X)
    assert all(not numpy.shares_memory(o, x) for o in out)
    out[0][:] = 0.0
    numpy.testing.assert_array_equal(x, X)


def test_python_control_flow_on_traced_values():
    def f(x):
        y = x
        while np.sum(y) < 100.0:
            y = y * 2.0
        return y

    numpy.testing.assert_allclose(jitgrad.jit(f)(numpy.ones(3)), numpy.full(3, 64.0))
    numpy.testing.assert_allclose(jitgrad.jit(f)(numpy.full(3, 40.0)), numpy.full(3, 40.0))


def test_grad_of_a_jitted_function_is_the_functions_gradient():
    f = lambda x: np.sum(np.sin(x) ** 2 * x)  # noqa: E731
    jf = jitgrad.jit(f)
    numpy.testing.assert_allclose(jitgrad.grad(lambda x: jf(x))(X), jitgrad.grad(f)(X),
                                  rtol=1e-14)
    numpy.testing.assert_allclose(jitgrad.grad(jf)(X), 2 * numpy.sin(X) * numpy.cos(X) * X
                                  + numpy.sin(X) ** 2, rtol=1e-13)


def test_bad_input_is_named():
    with pytest.raises(jitgrad.ArgumentError, match="jit: expected a function"):
        jitgrad.jit(3.0)
    with pytest.raises(jitgrad.TracingError, match="jit of <lambda>: .* returned no arrays"):
        jitgrad.jit(lambda x: ())(X)
    with pytest.raises(jitgrad.ShapeError):
        jitgrad.jit(lambda x, y: x + y)(X, numpy.ones(3))
    assert repr(jitgrad.jit(lambda x: x)._jitgrad) == "<jitgrad jit of <lambda>>"


def test_every_tier_gives_the_same_values():
    f = lambda x: (np.sum(np.exp(x) * np.sin(x)), np.cumsum(x) ** 2)  # noqa: E731
    expected = (numpy.sum(numpy.exp(X) * numpy.sin(X)), numpy.cumsum(X) ** 2)
    for mode in ("interpret", "auto", "compile"):
        with jitgrad.execution(mode):
            value, array = jitgrad.jit(lambda x: f(x))(X)
        assert value == pytest.approx(expected[0], rel=1e-14), mode
        numpy.testing.assert_allclose(array, expected[1], rtol=1e-14)
