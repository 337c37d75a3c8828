"""Property-based tests: random compositions of primitives over random shapes, broadcasting and
values, compiled against the reference interpreter of the same IR and against central finite
differences.  Each example compiles a kernel (~0.3 s), so CI runs a small, fixed set of examples;
`JITGRAD_HYPOTHESIS_EXAMPLES=500 python -m pytest tests/test_properties.py` runs more, freshly
drawn."""

import math
import os

import numpy
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import jitgrad  # noqa: E402
import jitgrad.numpy as np  # noqa: E402
from jitgrad.api import _GradFunction  # noqa: E402
from jitgrad.interpret import evaluate  # noqa: E402

_MORE = int(os.environ.get("JITGRAD_HYPOTHESIS_EXAMPLES", "0"))
EXAMPLES = settings(max_examples=_MORE or 12, deadline=None, derandomize=not _MORE,
                    database=None, print_blob=True)

# Smooth everywhere on the reals, so that finite differences are meaningful at any input.
UNARY = {
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "neg": np.negative,
    "exp_tanh": lambda a: np.exp(np.tanh(a)),
    "log1p_sq": lambda a: np.log1p(a * a),
    "sqrt_1p_sq": lambda a: np.sqrt(1.0 + a * a),
    "square": lambda a: a ** 2,
    "cube": lambda a: a ** 3,
    "recip_1p_sq": lambda a: 1.0 / (1.0 + a * a),
}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "div": lambda a, b: a / (1.5 + np.sin(b)),
    "pow_pos": lambda a, b: (1.0 + a * a) ** np.tanh(b),
}
REDUCE = {"sum": np.sum, "mean": np.mean}

SHAPES = [(3,), (2, 3)]
# Shapes that broadcast against each of SHAPES.
OPERANDS = {(3,): [(), (3,), (1,)], (2, 3): [(), (3,), (2, 1), (1, 3), (2, 3)]}


def expressions(shape):
    """Trees over the leaf "x" (the differentiated argument, of `shape`) and constants of
    shapes that broadcast with it.  A tree is a tuple: ("x",), ("c", shape, seed),
    (unary, tree), (binary, tree, tree), (reduce, axis, tree)."""
    leaves = st.one_of(st.just(("x",)),
                       st.builds(lambda s, seed: ("c", s, seed),
                                 st.sampled_from(OPERANDS[shape]), st.integers(0, 9)))

    def grow(children):
        return st.one_of(
            st.builds(lambda name, a: (name, a), st.sampled_from(sorted(UNARY)), children),
            st.builds(lambda name, a, b: (name, a, b), st.sampled_from(sorted(BINARY)),
                      children, children))

    return st.recursive(leaves, grow, max_leaves=5)


def build(tree):
    def f(x):
        return _eval(tree, x)
    return f


def _eval(tree, x):
    kind = tree[0]
    if kind == "x":
        return x
    if kind == "c":
        return numpy.random.default_rng(tree[2]).uniform(-1, 1, tree[1])
    if kind in UNARY:
        return UNARY[kind](_eval(tree[1], x))
    return BINARY[kind](_eval(tree[1], x), _eval(tree[2], x))


def scalar_loss(tree, reduce, axis):
    inner = build(tree)

    def loss(x):
        y = inner(x) + 0.0 * x  # broadcast to x's shape at least
        if axis is None:
            return REDUCE[reduce](y)
        return np.sum(REDUCE[reduce](y, axis=axis) ** 2)

    return loss


def compiled_and_interpreted(f, x):
    value, grad = jitgrad.value_and_grad(f)(x)
    gf = _GradFunction(f, 0, with_value=True)
    key, dynamic, _ = gf._signature((x,), {})
    b = gf._build((x,), {}, key)
    return (value, grad), evaluate(b.grad_graph, dynamic, b.consts)


def central_difference(f, x, v, eps=1e-6):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


@EXAMPLES
@given(data=st.data())
def test_random_compositions_match_interpreter_and_finite_differences(data):
    shape = data.draw(st.sampled_from(SHAPES), label="shape")
    tree = data.draw(expressions(shape), label="expression")
    reduce = data.draw(st.sampled_from(sorted(REDUCE)), label="reduction")
    axis = data.draw(st.sampled_from([None] + list(range(len(shape)))), label="axis")
    values = data.draw(st.lists(st.floats(-2.0, 2.0, allow_subnormal=False),
                                min_size=math.prod(shape), max_size=math.prod(shape)),
                       label="x")
    x = numpy.array(values).reshape(shape)
    f = scalar_loss(tree, reduce, axis)
    (value, grad), (i_value, i_grad) = compiled_and_interpreted(f, x)
    numpy.testing.assert_allclose(value, i_value, rtol=1e-11, atol=1e-12)
    numpy.testing.assert_allclose(grad, i_grad, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(value, f(x), rtol=1e-11, atol=1e-12)
    rng = numpy.random.default_rng(len(values))
    for _ in range(2):
        v = rng.standard_normal(shape)
        v /= numpy.linalg.norm(v)
        fd = central_difference(f, x, v)
        assert abs(numpy.vdot(grad, v) - fd) <= 1e-5 * (1 + abs(fd)), (tree, fd)


EDGES = [0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan, 700.0, -745.0]


@EXAMPLES
@given(data=st.data())
def test_edge_values_propagate_as_in_the_interpreter(data):
    """inf, NaN, -0.0, huge and tiny inputs: the compiled kernel gives what NumPy gives for the
    same IR (no fast-math rewrite may fold an inf or a NaN away)."""
    tree = data.draw(expressions((3,)), label="expression")
    values = data.draw(st.lists(st.sampled_from(EDGES), min_size=3, max_size=3), label="x")
    x = numpy.array(values)
    f = scalar_loss(tree, "sum", None)
    with numpy.errstate(all="ignore"):
        (value, grad), (i_value, i_grad) = compiled_and_interpreted(f, x)
    numpy.testing.assert_allclose(value, i_value, rtol=1e-11, atol=0, equal_nan=True)
    numpy.testing.assert_allclose(grad, i_grad, rtol=1e-10, atol=1e-300, equal_nan=True)
