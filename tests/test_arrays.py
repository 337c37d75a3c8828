"""Building and rearranging arrays, and indexing with integer arrays and masks
(jitgrad/numpy/_arrays.py), against autograd's values and gradients."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import ShapeError, TracingError

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_second_order
except ImportError:
    from gradcheck import check_second_order

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

rng = numpy.random.default_rng(0)
X = rng.standard_normal((3, 4))
IDX = numpy.array([2, 0, 2, 1])
MASK = X[0] > 0

CASES = {
    "array": lambda np, x: np.sum(np.array([[x[0, 0], x[1, 1] * 2], [3.0, x[2, 3]]]) ** 2),
    "asarray-tuple": lambda np, x: np.sum(np.asarray((x[0], x[1] * 2)) ** 2),
    "concatenate": lambda np, x: np.sum(np.concatenate([x, x[:1] * 2], axis=0) ** 2 * 1.5),
    "concatenate-1": lambda np, x: np.sum(np.concatenate([x, x ** 2], axis=-1) ** 2),
    "stack": lambda np, x: np.sum(np.stack([x[0], x[1] ** 2], axis=1)
                                  * np.arange(8.0).reshape(4, 2)),
    "hstack-vstack": lambda np, x: np.sum(np.hstack([x, x]) ** 2)
    + np.sum(np.vstack([x[0], x[1]]) ** 3),
    "column-row": lambda np, x: np.sum(np.column_stack([x[0], x[1]]) ** 2)
    + np.sum(np.row_stack([x[0], x[2]]) * 3),
    "dstack": lambda np, x: np.sum(np.dstack([x, x * 2]) ** 2),
    "gather": lambda np, x: np.sum(x[IDX] ** 2 * 1.1) + np.sum(x[:, IDX] * x[0]),
    "mask": lambda np, x: np.sum(x[:, MASK] ** 2),
    "mixed": lambda np, x: np.sum(x[[0, 2], 1:3] ** 2) + np.sum(x[1, [3, 3, 0]]),
    "roll": lambda np, x: np.sum(np.roll(x, 1, axis=1) * x) + np.sum(np.roll(x, -2) * x),
    "flip": lambda np, x: np.sum(np.fliplr(np.flipud(x)) * x ** 2),
    "tile-repeat": lambda np, x: np.sum(np.tile(x[0], (2, 3)) ** 2)
    + np.sum(np.repeat(x, 2, axis=0) ** 3),
    "split": lambda np, x: np.sum(np.split(x, 2, axis=1)[1] ** 2)
    + np.sum(np.array_split(x, 3)[2]),
    "squeeze-expand": lambda np, x: np.sum(np.squeeze(np.expand_dims(x, 1)) ** 2
                                           * np.ravel(x).reshape(3, 4)),
    "moveaxis-swapaxes": lambda np, x: np.sum(np.moveaxis(x[None], 0, 2)[:, :, 0]
                                              * np.swapaxes(x, 0, 1).T),
    "atleast": lambda np, x: np.sum(np.atleast_2d(x[0]) ** 2) + np.sum(np.atleast_1d(x[0, 0])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_autograd(name):
    f = CASES[name]
    with jitgrad.execution("interpret"):
        value, g = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    expected_value, expected = autograd.value_and_grad(lambda x: f(anp, x))(X)
    assert value == pytest.approx(expected_value, rel=1e-13)
    numpy.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", ["array", "concatenate", "gather", "mask", "tile-repeat"])
def test_compiled(name):
    f = CASES[name]
    value, g = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    expected_value, expected = autograd.value_and_grad(lambda x: f(anp, x))(X)
    assert value == pytest.approx(expected_value, rel=1e-13)
    numpy.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-14)


def test_repeated_indices_accumulate_and_second_order():
    x = numpy.array([1.0, 2.0, 3.0])
    g = jitgrad.grad(lambda x: np.sum(x[[0, 0, 2, 0]] ** 2))(x)
    numpy.testing.assert_array_equal(g, [6.0, 0.0, 6.0])
    with jitgrad.execution("interpret"):
        check_second_order(lambda x: np.sum(np.sin(x[[2, 0, 2]]) * x[[1, 1, 0]]), x)


def test_index_errors_name_the_index_kind():
    with pytest.raises(ShapeError, match="an integer array.*out of bounds"):
        jitgrad.grad(lambda x: np.sum(x[numpy.array([0, 5])]))(numpy.ones(3))
    with pytest.raises(ShapeError, match="a boolean mask of shape \\(2,\\)"):
        jitgrad.grad(lambda x: np.sum(x[numpy.array([True, False])]))(numpy.ones(3))
    with pytest.raises(TracingError, match="boolean mask of shape \\(3,\\) computed from traced"):
        jitgrad.grad(lambda x: np.sum(x[x > 0]))(numpy.ones(3))
    with pytest.raises(ShapeError, match="np.concatenate: the arrays' shapes"):
        jitgrad.grad(lambda x: np.sum(np.concatenate([x, numpy.ones((2, 2))])))(numpy.ones(3))


def test_inputs_are_not_modified():
    x, idx = X.copy(), IDX.copy()
    jitgrad.grad(lambda x: np.sum(x[idx] ** 2) + np.sum(np.concatenate([x, x])))(x)
    numpy.testing.assert_array_equal(x, X)
    numpy.testing.assert_array_equal(idx, IDX)


try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_grads
except ImportError:
    from gradcheck import check_grads

MORE = {
    "rot90": lambda np, x: np.sum(np.rot90(x) * X.T) + np.sum(np.rot90(x, 3) * X.T ** 2)
    + np.sum(np.rot90(x, 2) * X),
    "diff": lambda np, x: np.sum(np.diff(x, axis=1) ** 2) + np.sum(np.diff(x, n=2, axis=0)),
    "gradient": lambda np, x: np.sum(np.gradient(x, axis=1) ** 2),
    "select": lambda np, x: np.sum(np.select([x > 0, x < -0.5], [x ** 2, x * 3], 1.0)),
    "linspace": lambda np, x: np.sum(np.linspace(x[0, 0], x[1, 1], 5) ** 2),
    "sort-last": lambda np, x: np.sum(np.sort(x[0]) * numpy.arange(4.0)),
}


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_against_autograd(name):
    f = MORE[name]
    with jitgrad.execution("interpret"):
        value, g = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    expected_value, expected = autograd.value_and_grad(lambda x: f(anp, x))(X)
    assert value == pytest.approx(expected_value, rel=1e-13)
    numpy.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-14)


FINITE_DIFFERENCES = {  # where autograd has no rule (sort along axis 0, pad's other modes)
    "sort-axes": lambda x: np.sum(np.sort(x, axis=1) * numpy.arange(4.0))
    + np.sum(np.sort(x, axis=0)[0] ** 2),
    "pad-modes": lambda x: np.sum(np.pad(x, ((1, 2), (0, 1))) ** 2)
    + np.sum(np.pad(x, 1, mode="edge") * X[0, 0]) + np.sum(np.pad(x, 2, mode="reflect") ** 3)
    + np.sum(np.pad(x, (1, 1), mode="wrap") * 2) + np.sum(np.pad(x, 1, mode="symmetric") ** 2),
    "take": lambda x: np.sum(np.take(x, [3, 0, 0], axis=1) ** 2)
    + np.sum(np.take_along_axis(x, numpy.argsort(X, axis=1), axis=1) * numpy.arange(4.0)),
    "full": lambda x: np.sum(np.full((2, 3), x[0, 0]) * x[1, :3]),
}


@pytest.mark.parametrize("name", sorted(FINITE_DIFFERENCES))
def test_against_finite_differences(name):
    with jitgrad.execution("interpret"):
        check_grads(FINITE_DIFFERENCES[name], X)


def test_sort_compiled_and_argsort_has_no_gradient():
    f = FINITE_DIFFERENCES["sort-axes"]
    with jitgrad.execution("interpret"):
        expected = jitgrad.grad(f)(X)
    numpy.testing.assert_allclose(jitgrad.grad(f)(X), expected, rtol=1e-14)
    g = jitgrad.grad(lambda x: np.sum(np.argsort(x) * x))(numpy.array([3.0, 1.0, 2.0]))
    numpy.testing.assert_array_equal(g, [1.0, 2.0, 0.0])  # argsort is a constant


# Integer indices computed from traced values (or passed as arguments, hence traced): the
# positions are computed in the kernel.  Each case is f(np, x, index) with x of shape (3, 4).
X3 = rng.standard_normal((3, 4, 2))
I2 = numpy.array([[0, 2, -1], [1, 1, 2]])
J = numpy.array([3, -4, 1])
TRACED_INDEX = {
    "rows": lambda np, x, i: np.sum(x[i] ** 2 * 1.5),
    "pairs": lambda np, x, i: np.sum(np.sin(x[i, J]) * np.arange(6.0).reshape(2, 3)),
    "pairs-one-shape": lambda np, x, i: np.sum(np.sin(x[i, (i * 3 + 1) % 4])
                                               * np.arange(6.0).reshape(2, 3)),
    "columns": lambda np, x, i: np.sum(x[:, J] * x[:, i[0]]),
    "with-slice": lambda np, x, i: np.sum(x[i[1], 1:3] ** 3),
    "scalar": lambda np, x, i: np.sum(x[:, i[0, 1]] ** 2) + x[i[1, 0], i[0, 2]],
    "ellipsis-3d": lambda np, x, i: np.sum(np.tanh(X3[..., np.abs(i[0, 1:]) - 1] * x[0, 0]))
    + np.sum(x[None, i[0, 0]]),
    "split-3d": lambda np, x, i: np.sum(np.cos(X3[i[0], :, i[1] % 2] * x[1, 1])),
    "nested": lambda np, x, i: np.sum(x[i][:, :, J[:2]][i[1] - 1] ** 2),
}


@pytest.mark.parametrize("name", sorted(TRACED_INDEX))
def test_traced_integer_indices_against_autograd(name):
    f = TRACED_INDEX[name]
    with jitgrad.execution("interpret"):
        value, g = jitgrad.value_and_grad(lambda x, i: f(np, x, i))(X, I2)
    expected_value, expected = autograd.value_and_grad(lambda x: f(anp, x, I2))(X)
    assert value == pytest.approx(expected_value, rel=1e-13)
    numpy.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-14)


def _advect(np, x, v):
    """fluidsim's pattern: indices from floor() of traced coordinates, wrapped by mod."""
    where = numpy.arange(x.size) - v
    left = np.floor(where).astype(int)
    weight = where - left
    left, right = np.mod(left, x.size), np.mod(left + 1, x.size)
    return np.sum((x[left] * (1 - weight) + x[right] * weight) ** 2)


def test_traced_indices_compiled_new_values_and_second_order():
    f = jitgrad.value_and_grad(lambda x, i: TRACED_INDEX["pairs"](np, x, i))
    for i in (I2, I2[::-1].copy(), numpy.array([[2, 2, 2], [0, 0, 0]])):  # one kernel, any values
        value, g = f(X, i)
        expected_value, expected = autograd.value_and_grad(
            lambda x: TRACED_INDEX["pairs"](anp, x, i))(X)
        assert value == pytest.approx(expected_value, rel=1e-13)
        numpy.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-14)
    x, v = rng.standard_normal(7), rng.standard_normal(7) * 3
    g = jitgrad.grad(lambda x, v: _advect(np, x, v), argnum=(0, 1))(x, v)
    expected = autograd.grad(lambda x, v: _advect(anp, x, v), argnum=(0, 1))(x, v)
    for a, b in zip(g, expected):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    with jitgrad.execution("interpret"):
        check_second_order(lambda x: _advect(np, x, v), x)


@pytest.mark.parametrize("mode", ["interpret", "compile"])
def test_traced_index_out_of_bounds_raises(mode):
    f = jitgrad.grad(lambda x, i: np.sum(x[i] ** 2))
    with jitgrad.execution(mode):
        numpy.testing.assert_array_equal(f(numpy.ones(3), numpy.array([0, -3])), [4.0, 0, 0])
        for bad in ([0, 3], [-4, 0]):
            with pytest.raises(IndexError, match="out of bounds"):
                f(numpy.ones(3), numpy.array(bad))
    with pytest.raises(TracingError, match="indices must be integers"):
        jitgrad.grad(lambda x, i: np.sum(x[i]))(numpy.ones(3), numpy.array([0.0]))


def test_take_and_take_along_axis_with_traced_indices():  # autograd has no rule for these
    def f(x, i):
        return (np.sum(np.take_along_axis(x, np.abs(i).T, axis=1) ** 2 * X[:, :2])
                + np.sum(np.take(x, i, axis=1) ** 2) + np.sum(np.take(x, i[0]) ** 3))

    with jitgrad.execution("interpret"):
        traced = jitgrad.value_and_grad(f)(X, I2)
        concrete = jitgrad.value_and_grad(lambda x: f(x, I2))(X)
    assert traced[0] == pytest.approx(concrete[0], rel=1e-14)
    numpy.testing.assert_allclose(traced[1], concrete[1], rtol=1e-14)


def test_numpy_array_indexed_with_traced_integers():
    """A NumPy array made inside the function, indexed with traced integers (wing.py's
    `advect(red_smoke, vx, vy)`): gathered in the trace, not converted by NumPy."""
    def f(x, v):
        table = numpy.arange(12.0).reshape(3, 4)
        k = np.mod(np.floor(x * 3).astype(int), 4)
        return np.sum(table[1:, k] * x) + np.sum(table[k[0] % 3, ::-1] * v) + table[0, 1:][k[1]]

    x, v = numpy.array([0.3, 0.5, 0.9, 0.1]), numpy.ones(4)
    k = numpy.mod(numpy.floor(x * 3).astype(int), 4)
    with jitgrad.execution("interpret"):
        value, (gx, gv) = jitgrad.value_and_grad(f, argnum=(0, 1))(x, v)
    table = numpy.arange(12.0).reshape(3, 4)
    assert value == pytest.approx(f(x, v), rel=1e-15)  # plain NumPy values
    numpy.testing.assert_array_equal(gx, table[1:, k].sum(axis=0))
    numpy.testing.assert_array_equal(gv, table[k[0] % 3, ::-1])
