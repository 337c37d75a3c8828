"""Bad input gets a clear error in the user's terms, never a Numba typing traceback."""

import numpy
import pytest

import jitgrad.numpy as np
from jitgrad import ArgumentError, JitgradError, ShapeError, TracingError, grad

x3 = numpy.array([1.0, 2.0, 3.0])


def test_gradient_of_a_non_scalar_output_names_the_shape():
    def f(x):
        return np.sin(x)

    with pytest.raises(TracingError, match=r"f must return a scalar.*shape \(3,\)"):
        grad(f)(x3)


def test_in_place_assignment_says_what_to_write_instead():
    def f(x):
        x[0] = 1.0
        return np.sum(x)

    with pytest.raises(TracingError, match=r"in-place assignment.*np\.where"):
        grad(f)(x3)


@pytest.mark.parametrize("convert", [float, int, bool])
def test_concrete_value_of_a_traced_array(convert):
    def f(x):
        return convert(np.sum(x)) * np.sum(x)

    with pytest.raises(TracingError, match="not known while jitgrad traces"):
        grad(f)(x3)


def test_attribute_assignment_in_a_traced_loop_names_the_construct_and_the_alternative():
    class Counter:
        n = 0

    counter = Counter()

    def f(x):
        s = x
        while np.sum(s) < 100.0:
            s = s * 2.0
            counter.n += 1
        return np.sum(s)

    with pytest.raises(TracingError,
                       match=r"(?s)test_errors\.py:\d+.*an assignment to an attribute.*while_loop"):
        grad(f)(x3)


def test_a_value_assigned_only_inside_a_traced_loop():
    def f(x):
        s = x
        while np.sum(s) < 100.0:
            last = s
            s = s * 2.0
        return np.sum(last)

    with pytest.raises(TracingError, match="`last`.*only inside the compiled loop"):
        grad(f)(x3)


def test_unsupported_function_is_named_with_where_to_look():
    with pytest.raises(TracingError, match=r"numpy\.unwrap is not supported.*docs/numpy\.md"):
        grad(lambda x: np.sum(np.unwrap(x)))(x3)
    with pytest.raises(TracingError, match=r"numpy\.fft\.hfft is not supported"):
        grad(lambda x: np.sum(np.fft.hfft(x)))(x3)
    # ...and works on plain arrays, where nothing is traced.
    numpy.testing.assert_array_equal(np.unwrap(x3), numpy.unwrap(x3))


def test_names_that_shadow_builtins_never_break_the_module():
    # NumPy's `any`, `all`, `round`... once cached under names the module's own wrappers used:
    # every later call of an unsupported function was a RecursionError.
    for name in ("any", "all", "round", "abs", "sum", "min", "max", "pow", "bool", "isinstance"):
        if hasattr(numpy, name):
            getattr(np, name)
    assert np.any(numpy.ones(3)) and np.all(numpy.ones(2)) and np.round(1.26, 1) == 1.3
    numpy.testing.assert_array_equal(np.unwrap(x3), numpy.unwrap(x3))
    numpy.testing.assert_array_equal(np.linalg.matrix_power(numpy.eye(2), 2), numpy.eye(2))


def test_numpy_itself_on_a_traced_value():
    # NumPy functions that jitgrad supports are routed to jitgrad.numpy...
    g = grad(lambda x: numpy.sum(numpy.exp(x)))(x3)
    numpy.testing.assert_allclose(g, numpy.exp(x3))
    # ...and the others name themselves.
    with pytest.raises(TracingError, match="numpy.unwrap"):
        grad(lambda x: numpy.sum(numpy.unwrap(x)))(x3)
    with pytest.raises(TracingError, match=r"numpy\.linalg\.lstsq"):
        grad(lambda x: numpy.sum(numpy.linalg.lstsq(numpy.eye(3), x)[0]))(x3)


def test_shape_mismatch_names_operation_and_shapes():
    with pytest.raises(ShapeError, match=r"add.*\(3,\) and \(4,\)"):
        grad(lambda x: np.sum(x + numpy.ones(4)))(x3)
    with pytest.raises(ShapeError, match=r"dot.*\(3,\) and \(2, 2\)"):
        grad(lambda x: np.sum(np.dot(x, numpy.ones((2, 2)))))(x3)
    with pytest.raises(ShapeError, match="reshape"):
        grad(lambda x: np.sum(x.reshape(2, 2)))(x3)
    with pytest.raises(ShapeError, match="axis 2 is out of bounds"):
        grad(lambda x: np.sum(x, axis=2))(x3)


def test_argnum_out_of_range():
    with pytest.raises(ArgumentError, match="argnum 2 is out of range.*2 positional arguments"):
        grad(lambda a, b: a * b, 2)(1.0, 2.0)
    with pytest.raises(ArgumentError, match="argnum must be an int"):
        grad(lambda a: a, "0")


@pytest.mark.parametrize("bad, what", [("3.0", "str"), (None, "NoneType"),
                                       (numpy.array(["a"]), "dtype <U1"), (True, "bool")])
def test_non_numeric_argument(bad, what):
    with pytest.raises(ArgumentError, match=f"argument 0 of <lambda> is .*{what}"):
        grad(lambda x: x * 2.0)(bad)


def test_unhashable_static_argument():
    def f(x, opts):
        return np.sum(x)

    with pytest.raises(ArgumentError, match="argument 1 of f is a set"):
        grad(f)(x3, {1, 2})


def test_indexing_by_traced_values_gathers_or_is_refused_clearly():
    numpy.testing.assert_array_equal(grad(lambda x: np.sum(x[numpy.array([0, 2])]))(x3),
                                     [1.0, 0.0, 1.0])
    # integer indices computed from traced values are gathered in the kernel
    w = numpy.array([1.0, 10.0, 100.0])
    x = numpy.array([0.5, -1.0, 2.0])
    expected = numpy.empty(3)
    expected[numpy.argsort(x)] = w
    numpy.testing.assert_array_equal(grad(lambda x: np.sum(x[np.argsort(x)] * w))(x), expected)
    # a mask computed from traced values would give a result whose shape depends on the values
    with pytest.raises(TracingError, match="a boolean mask of shape \\(3,\\) computed from "
                                           "traced values"):
        grad(lambda x: np.sum(x[x > 0]))(x3)


def test_errors_are_jitgrad_errors():
    for err in (TracingError, ShapeError, ArgumentError):
        assert issubclass(err, JitgradError)


def test_math_module_on_a_traced_value_points_to_jitgrad_numpy():
    import math

    def f(x):
        return math.exp(x) * 2.0

    with pytest.raises(TracingError, match=r"math\.exp was given a traced value.*np\.exp"):
        grad(f)(1.0)

    def g(x):
        return math.sqrt(2.0) * x  # math on plain numbers is fine

    assert grad(g)(1.0) == pytest.approx(math.sqrt(2.0))


def test_boolean_operators_on_masks_and_a_clear_error_on_numbers():
    x = numpy.array([1.0, numpy.nan, 3.0, -1.0])

    def f(x):
        keep = ~(np.isnan(x) | (x < 0)) & (x > 0) ^ (x > 2.5)
        return np.sum(np.where(keep, x, 0.0) ** 2)

    numpy.testing.assert_array_equal(grad(f)(x), [2.0, 0.0, 0.0, 0.0])
    with pytest.raises(TracingError, match="`&` of a traced value of dtype float64"):
        grad(lambda x: np.sum(x & 1))(x)
