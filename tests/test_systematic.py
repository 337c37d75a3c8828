"""Systematic gradient checks: every supported primitive, over shapes, broadcasting, axes and
argnums, against central finite differences (``gradcheck.check_grads``), and against autograd
where finite differences are invalid (ties in max/min).

Every non-scalar output is reduced as ``np.sum(out * w)`` (or ``np.sum(w * np.sin(out))`` after a
view) with a fixed random weight array ``w`` of the output's shape, so every element's gradient
is checked and a permuted or misplaced gradient cannot cancel out.

Each ``check_grads`` call traces and compiles one (function, signature) pair with Numba, so the
parametrizations are chosen to cover every axis of variation without the full product: the file
compiles about 160 kernels (~75 s with a cold kernel cache, ~5 s warm).  Unary functions are
checked one by one at (3, 4) and all together (one leaf of a dict argument each, so a failure
report still names the function) at the other shapes.  Test ids read ``tanh-3x4``,
``add-3x4:4-argnum0``, ``sum-axis0_2-keep``, ``all-0d`` and can be selected with ``-k`` (pytest's
``-k`` does not accept parentheses or commas, hence ``3x4`` rather than ``(3,4)``).
"""

from __future__ import annotations

import zlib

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_against_autograd, check_grads, check_not_modified, not_modified
except ImportError:
    from gradcheck import check_against_autograd, check_grads, check_not_modified, not_modified

FLOAT = "float"  # a Python float argument, as opposed to the 0-d array shape ()


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def sid(shape) -> str:
    """Readable, ``-k``-friendly id of a shape: float, 0d, 5, 3x4, 2x3x4."""
    if shape == FLOAT:
        return "float"
    if shape == ():
        return "0d"
    return "x".join(map(str, shape))


def _rng(*key):
    return numpy.random.default_rng(zlib.crc32(repr(key).encode()))


def rand(shape, lo, hi, *key, signed=False):
    """Uniform in [lo, hi] (times a random sign if ``signed``), seeded by ``key``: a Python float
    for ``FLOAT``, else an ndarray of ``shape`` (0-d included)."""
    rng = _rng(shape, lo, hi, signed, *key)
    size = () if shape == FLOAT else shape
    x = rng.uniform(lo, hi, size)
    if signed:
        x = x * rng.choice([-1.0, 1.0], size)
    return float(x) if shape == FLOAT else numpy.array(x, dtype=numpy.float64)


def distinct(shape, *key, spacing=0.1):
    """Values pairwise at least ``spacing`` apart, in random order: max/min have a unique
    argmax/argmin with a margin far above the finite-difference step."""
    rng = _rng("distinct", shape, *key)
    n = int(numpy.prod(shape))
    values = (rng.permutation(n) - n / 2) * spacing + rng.uniform(0, spacing / 4, n)
    return values.reshape(shape)


def weights(shape, *key):
    """Fixed weights for reducing an output of ``shape``: a Python float for a scalar output,
    else distinct-magnitude values of both signs."""
    rng = _rng("w", shape, *key)
    if shape == ():
        return float(rng.uniform(0.5, 1.5))
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def weighted(fn, *args, key=(), wrap=None):
    """``loss(*a) = np.sum(wrap(fn(*a)) * w)`` with ``w = weights(shape of fn(*args))``.  The
    output shape is found by evaluating ``fn`` eagerly on the NumPy arguments."""
    w = weights(numpy.shape(fn(*args)), *key)
    if wrap is None:
        def loss(*a):
            return np.sum(fn(*a) * w)
    else:
        def loss(*a):
            return np.sum(wrap(fn(*a)) * w)
    return loss


def separated(make_pair, fn_margin, margin=0.1, tries=200):
    """Draw ``make_pair(attempt)`` until ``fn_margin(a, b) >= margin`` (no near-ties)."""
    for attempt in range(tries):
        a, b = make_pair(attempt)
        if fn_margin(a, b) >= margin:
            return a, b
    raise RuntimeError("could not draw well-separated operands")


def _gap(a, b):
    return float(numpy.min(numpy.abs(numpy.subtract(a, b))))


# ------------------------------------------------------------------------------------------------
# Unary elementwise functions
# ------------------------------------------------------------------------------------------------

# name, function, domain (lo, hi), signed: inputs are +-[lo, hi] (away from a kink at 0)
UNARY = [
    ("neg", lambda x: -x, (-2.0, 2.0), False),
    ("exp", lambda x: np.exp(x), (-2.0, 2.0), False),
    ("log", lambda x: np.log(x), (0.3, 3.0), False),
    ("log1p", lambda x: np.log1p(x), (-0.5, 2.0), False),
    ("expm1", lambda x: np.expm1(x), (-2.0, 2.0), False),
    ("sqrt", lambda x: np.sqrt(x), (0.3, 3.0), False),
    ("sin", lambda x: np.sin(x), (-3.0, 3.0), False),
    ("cos", lambda x: np.cos(x), (-3.0, 3.0), False),
    ("tan", lambda x: np.tan(x), (-1.2, 1.2), False),
    ("tanh", lambda x: np.tanh(x), (-2.0, 2.0), False),
    ("sinh", lambda x: np.sinh(x), (-2.0, 2.0), False),
    ("cosh", lambda x: np.cosh(x), (-2.0, 2.0), False),
    ("arcsin", lambda x: np.arcsin(x), (-0.8, 0.8), False),
    ("arccos", lambda x: np.arccos(x), (-0.8, 0.8), False),
    ("arctan", lambda x: np.arctan(x), (-3.0, 3.0), False),
    ("abs", lambda x: np.abs(x), (0.2, 2.0), True),
    ("sign", lambda x: np.sign(x), (0.2, 2.0), True),
]


@pytest.mark.parametrize("name,fn,domain,signed", [
    pytest.param(name, fn, dom, signed, id=f"{name}-3x4") for name, fn, dom, signed in UNARY
])
def test_unary(name, fn, domain, signed):
    x = rand((3, 4), *domain, name, signed=signed)
    check_grads(weighted(fn, x, key=(name,)), x)


@pytest.mark.parametrize("shape", [FLOAT, (), (5,), (2, 3, 4)], ids=lambda s: f"all-{sid(s)}")
def test_unary_all_functions(shape):
    # Every function at once, each on its own leaf of a dict argument (inputs in its domain):
    # one compile per shape, and a failure report names the leaf, i.e. the function.
    xs = {name: rand(shape, *dom, name, "all", signed=signed) for name, _, dom, signed in UNARY}
    fns = {name: fn for name, fn, _, _ in UNARY}
    ws = {name: weights(numpy.shape(fns[name](xs[name])), name, "all") for name in fns}

    def f(xs):
        total = 0.0
        for name, fn in fns.items():
            total = total + np.sum(fn(xs[name]) * ws[name])
        return total

    check_grads(f, xs)


# ------------------------------------------------------------------------------------------------
# Binary elementwise functions: broadcasting, argnums, Python scalars on either side
# ------------------------------------------------------------------------------------------------


def _draw_binary(name, sa, sb, attempt=0):
    key = (name, sa, sb, attempt)
    if name == "div":
        return rand(sa, -2.0, 2.0, *key), rand(sb, 0.5, 2.0, *key, signed=True)
    if name == "pow":
        return rand(sa, 0.5, 2.0, *key), rand(sb, -1.5, 2.5, *key)
    return rand(sa, -2.0, 2.0, *key), rand(sb, -2.0, 2.0, *key, "b")


def binary_operands(name, sa, sb):
    if name in ("maximum", "minimum"):  # no ties, so finite differences are valid
        return separated(lambda k: _draw_binary(name, sa, sb, k), _gap)
    return _draw_binary(name, sa, sb)


BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a ** b),
    ("maximum", lambda a, b: np.maximum(a, b)),
    ("minimum", lambda a, b: np.minimum(a, b)),
]
# (shape of a, shape of b, argnum): same shapes, trailing broadcast, two-sided broadcast and a
# Python float against an array; each argnum appears on its own and both together.
BINARY_LAYOUTS = [
    ((3, 4), (3, 4), (0, 1)),
    ((3, 4), (4,), 0),
    ((3, 1), (1, 4), 1),
    (FLOAT, (3, 4), (0, 1)),
]


def _argnum_id(argnum):
    return "argnum" + ("".join(map(str, argnum)) if isinstance(argnum, tuple) else str(argnum))


@pytest.mark.parametrize("name,fn,sa,sb,argnum", [
    pytest.param(name, fn, sa, sb, argnum, id=f"{name}-{sid(sa)}:{sid(sb)}-{_argnum_id(argnum)}")
    for name, fn in BINARY for sa, sb, argnum in BINARY_LAYOUTS
])
def test_binary(name, fn, sa, sb, argnum):
    a, b = binary_operands(name, sa, sb)
    check_grads(weighted(fn, a, b, key=(name,)), a, b, argnum=argnum)


# A Python float literal on the left and on the right of an array argument.
SCALAR_CONST = {"add": 1.7, "sub": 1.7, "mul": 1.7, "div": 1.7, "pow": 1.7,
                "maximum": 0.3, "minimum": 0.3}


def _scalar_side_operand(name):
    if name == "div":
        return rand((3, 4), 0.5, 2.0, name, signed=True)
    if name == "pow":
        return rand((3, 4), 0.5, 2.0, name)
    x, _ = separated(lambda k: (rand((3, 4), -2.0, 2.0, name, k), SCALAR_CONST[name]), _gap)
    return x


@pytest.mark.parametrize("name,fn", [
    pytest.param(name, fn, id=f"{name}-python-float") for name, fn in BINARY
])
def test_binary_python_scalar(name, fn):
    # x op c and c op x, with c a Python float literal, each with its own weights.
    c = SCALAR_CONST[name]
    x = _scalar_side_operand(name)
    w1, w2 = weights((3, 4), name, "right"), weights((3, 4), name, "left")
    check_grads(lambda x: np.sum(fn(x, c) * w1) + np.sum(fn(c, x) * w2), x)


def test_python_int_literals():
    # Python ints on either side of every operator (and as integer exponents).
    x = rand((3, 4), 0.5, 2.0, "ints")
    ws = [weights((3, 4), "ints", k) for k in range(6)]

    def f(x):
        terms = [2 * x + 1, 3 - x * 2, x / 2 - 4 / x, x ** 2 + 2 ** x, -x ** -2,
                 np.maximum(x, 1) - np.minimum(2, x)]
        return sum(np.sum(t * w) for t, w in zip(terms, ws))

    check_grads(f, x)


# Three-dimensional broadcasting, where loops hoist values that depend only on outer indices.
BROADCAST_3D = [((2, 3, 4), (3, 1)), ((1, 3, 1), (2, 1, 4)), ((), (2, 3, 4))]


@pytest.mark.parametrize("sa,sb", [
    pytest.param(a, b, id=f"3d-{sid(a)}:{sid(b)}") for a, b in BROADCAST_3D
])
def test_broadcast_3d(sa, sb):
    a, b = rand(sa, -2, 2, "b3a", sa, sb), rand(sb, 0.5, 2, "b3b", sa, sb, signed=True)
    op = lambda a, b: a * b + np.sin(a) - b / (1.0 + a * a) + (a - b) ** 2
    check_grads(weighted(op, a, b), a, b, argnum=(0, 1))


# ------------------------------------------------------------------------------------------------
# Comparisons as masks for where
# ------------------------------------------------------------------------------------------------


def _branches(x, y):
    # Different smooth functions on each side, so a swapped or ignored mask changes the gradient.
    return np.sin(x) * y, x * y * y


def test_where_lt_arrays():
    x, y = separated(lambda k: (rand((3, 4), -2, 2, "lt", k), rand((3, 4), -2, 2, "lt-y", k)), _gap)
    check_grads(weighted(lambda x, y: np.where(x < y, *_branches(x, y)), x, y), x, y,
                argnum=(0, 1))


def test_where_le_python_scalar():
    x, _ = separated(lambda k: (rand((3, 4), -2, 2, "le", k), 0.3), _gap)
    check_grads(weighted(lambda x: np.where(x <= 0.3, np.exp(x), x * x), x), x)


def test_where_gt_python_scalar_on_left():
    x, _ = separated(lambda k: (rand((5,), -2, 2, "gt", k), 0.3), _gap)
    check_grads(weighted(lambda x: np.where(0.3 > x, np.exp(x), x * x), x), x)


def test_where_ge_broadcast():
    x, y = separated(lambda k: (rand((3, 4), -2, 2, "ge", k), rand((4,), -2, 2, "ge-y", k)), _gap)
    check_grads(weighted(lambda x, y: np.where(x >= y, *_branches(x, y)), x, y), x, y,
                argnum=(0, 1))


def test_where_eq_non_differentiated_argument():
    x = rand((3, 4), -2, 2, "eq")
    k = numpy.array([[0.0, 2.0, 2.0, 1.0], [2.0, 0.0, 1.0, 2.0], [1.0, 1.0, 2.0, 0.0]])
    check_grads(weighted(lambda x, k: np.where(k == 2.0, np.sin(x), x * k), x, k), x, k)


def test_where_ne_closure_constant():
    x = rand((2, 3, 4), -2, 2, "ne")
    c = _rng("ne").integers(0, 3, (3, 4)).astype(numpy.float64)
    check_grads(weighted(lambda x: np.where(c != 1.0, np.cos(x), 2.0 * x), x), x)


def test_where_closure_mask_three_way_broadcast():
    # condition (3, 1), x (4,), y (3, 4): the gradient of x sums over the broadcast rows.
    mask = numpy.array([[True], [False], [True]])
    x, y = rand((4,), -2, 2, "where-x"), rand((3, 4), -2, 2, "where-y")
    check_grads(weighted(lambda x, y: np.where(mask, np.sin(x), y * y), x, y), x, y,
                argnum=(0, 1))


def test_where_python_scalar_branch():
    x, _ = separated(lambda k: (rand((5,), -2, 2, "relu", k), 0.0), _gap)
    check_grads(weighted(lambda x: np.where(x > 0, x * x, 0.0), x), x)


# ------------------------------------------------------------------------------------------------
# Reductions
# ------------------------------------------------------------------------------------------------

AXES = [None, 0, -1, (0, 2)]


def _axis_id(axis):
    if isinstance(axis, tuple):
        return "axis" + "_".join(map(str, axis))
    return f"axis{axis}"


REDUCTION_CASES = (
    [pytest.param("sum", axis, keep, id=f"sum-{_axis_id(axis)}-{'keep' if keep else 'nokeep'}")
     for axis in AXES for keep in (False, True)]
    + [pytest.param(name, axis, keep, id=f"{name}-{_axis_id(axis)}-{'keep' if keep else 'nokeep'}")
       for name in ("mean", "max", "min")
       for axis, keep in zip(AXES, (False, True, False, True) if name != "mean"
                             else (True, False, True, False))]
)
_REDUCE = {"sum": lambda *a, **k: np.sum(*a, **k), "mean": lambda *a, **k: np.mean(*a, **k),
           "max": lambda *a, **k: np.max(*a, **k), "min": lambda *a, **k: np.min(*a, **k)}


@pytest.mark.parametrize("name,axis,keepdims", REDUCTION_CASES)
def test_reduction(name, axis, keepdims):
    x = distinct((2, 3, 4), name, axis, keepdims)
    reduce = _REDUCE[name]
    # sin() after the reduction: the gradient depends on the reduced values, not only on w.
    check_grads(weighted(lambda x: reduce(x, axis=axis, keepdims=keepdims), x, wrap=np.sin), x)


@pytest.mark.parametrize("name,shape,axis,keepdims", [
    pytest.param("sum", (2, 3, 4), (1, -1), True, id="sum-2x3x4-axis1_-1-keep"),
    pytest.param("min", (3, 4), -2, False, id="min-3x4-axis-2"),
])
def test_reduction_other_shapes(name, shape, axis, keepdims):
    x = distinct(shape, name, axis)
    reduce = _REDUCE[name]
    check_grads(weighted(lambda x: reduce(x, axis=axis, keepdims=keepdims), x, wrap=np.sin), x)


@pytest.mark.parametrize("method,kwargs", [
    pytest.param("sum", {"axis": 1}, id="x.sum-axis1"),
    pytest.param("mean", {"axis": (0, 1), "keepdims": True}, id="x.mean-axis0_1-keep"),
    pytest.param("max", {"axis": -1}, id="x.max-axis-1"),
    pytest.param("min", {}, id="x.min-axisNone"),
])
def test_reduction_method(method, kwargs):
    x = distinct((2, 3, 4), method)
    check_grads(weighted(lambda x: getattr(x, method)(**kwargs), x, wrap=np.sin), x)


def test_reduction_of_views():
    # Reductions reading through a transpose and a stepped slice, and a max over a slice.
    x = distinct((2, 3, 4), "rv")
    w1, w2 = weights((4, 3), "rv1"), weights((2,), "rv2")

    def f(x):
        s = np.sum(np.transpose(x, (2, 0, 1))[:, :, ::2], axis=1)  # (4, 2)
        m = np.max(x[:, 1:, ::-1], axis=(1, 2))  # (2,)
        return np.sum(np.sin(s) @ np.ones(2) * w1[:, 0]) + np.sum(np.sin(m) * w2)

    check_grads(f, x)


def test_reductions_broadcast_back_3d():
    # keepdims reductions broadcast back over the reduced axes, twice over.
    x = rand((2, 3, 4), -2, 2, "rb")
    w = weights((2, 3, 4), "rb")

    def f(x):
        c = x - np.mean(x, axis=1, keepdims=True)
        out = c / np.sqrt(np.sum(c * c, axis=(0, 2), keepdims=True) + 0.1)
        return np.sum(out * w) + np.sum(np.max(out, axis=-1, keepdims=True) * out)

    check_grads(f, x)


# Ties: the gradient is split equally among tied elements (autograd's rule).  Finite
# differences are invalid there, so these compare with autograd.

def _ties(shape, *key):
    return _rng("ties", shape, *key).integers(0, 3, shape).astype(numpy.float64)


@pytest.mark.parametrize("name,axis,keepdims", [
    pytest.param("max", None, False, id="max-axisNone"),
    pytest.param("max", 1, False, id="max-axis1"),
    pytest.param("min", 0, True, id="min-axis0-keep"),
    pytest.param("max", (0, 2), False, id="max-axis0_2-3d"),
])
def test_reduction_ties_vs_autograd(name, axis, keepdims):
    pytest.importorskip("autograd")
    shape = (2, 3, 4) if axis == (0, 2) else (4, 5)
    x = _ties(shape, name, axis)
    w = weights(numpy.shape(getattr(numpy, name)(x, axis=axis, keepdims=keepdims)), name)

    def make(m):
        return lambda x: m.sum(m.sin(getattr(m, name)(x, axis=axis, keepdims=keepdims)) * w)

    check_against_autograd(make, x)


def test_maximum_minimum_ties_vs_autograd():
    pytest.importorskip("autograd")
    a, b = _ties((3, 4), "a"), _ties((4,), "b")
    assert numpy.any(a == b)

    w1, w2, w3 = weights((3, 4), "mx"), weights((3, 4), "mn"), weights((3, 4), "c")

    def make(m):
        return lambda a, b: (m.sum(m.maximum(a, b) * w1) + m.sum(m.minimum(b, a) * w2)
                             + m.sum(m.maximum(a, 1.0) * w3))

    check_against_autograd(make, a, b, argnum=(0, 1))


# ------------------------------------------------------------------------------------------------
# Shape operations: indexing, transpose, reshape
# ------------------------------------------------------------------------------------------------

# The gradient of a view is the weights scattered back, times cos() of the viewed values: both
# where each element goes and which value was read are checked.
INDEX_CASES = [
    ("5-[1:]", (5,), lambda x: x[1:]),
    ("7-[::2]", (7,), lambda x: x[::2]),
    ("7-[1:-1:3]", (7,), lambda x: x[1:-1:3]),
    ("6-[::-1]", (6,), lambda x: x[::-1]),
    ("3x4-[1]", (3, 4), lambda x: x[1]),
    ("3x4-[1:3,2]", (3, 4), lambda x: x[1:3, 2]),
    ("3x4-[:,None]", (3, 4), lambda x: x[:, None]),
    ("3x4-[::-2,-3:-1]", (3, 4), lambda x: x[::-2, -3:-1]),
    ("2x3x4-[-1,:,1:]", (2, 3, 4), lambda x: x[-1, :, 1:]),
    ("2x3x4-[1,2,3]", (2, 3, 4), lambda x: x[1, 2, 3]),
]


@pytest.mark.parametrize("shape,index", [pytest.param(s, f, id=i) for i, s, f in INDEX_CASES])
def test_indexing(shape, index):
    x = rand(shape, -2, 2, "index", shape)
    check_grads(weighted(index, x, wrap=np.sin), x)


TRANSPOSE_CASES = [
    ("3x4-.T", (3, 4), lambda x: x.T),
    ("2x3x4-transpose", (2, 3, 4), lambda x: np.transpose(x)),
    ("2x3x4-transpose(2,0,1)", (2, 3, 4), lambda x: np.transpose(x, (2, 0, 1))),
    ("2x3x4-x.transpose(1,0,2)", (2, 3, 4), lambda x: x.transpose(1, 0, 2)),
]


@pytest.mark.parametrize("shape,op", [pytest.param(s, f, id=i) for i, s, f in TRANSPOSE_CASES])
def test_transpose(shape, op):
    x = rand(shape, -2, 2, "transpose", shape)
    check_grads(weighted(op, x, wrap=np.sin), x)


RESHAPE_CASES = [
    ("2x3x4-to-6,-1", (2, 3, 4), lambda x: np.reshape(x, (6, -1))),
    ("12-x.reshape(3,4)", (12,), lambda x: x.reshape(3, 4)),
    ("2x3x4-x.reshape(-1)", (2, 3, 4), lambda x: x.reshape(-1)),
    # reshape to a column, then broadcast against the original row: an outer difference
    ("5-to-5,1-broadcast", (5,), lambda x: np.reshape(x, (5, 1)) - x),
]


@pytest.mark.parametrize("shape,op", [pytest.param(s, f, id=i) for i, s, f in RESHAPE_CASES])
def test_reshape(shape, op):
    x = rand(shape, -2, 2, "reshape", shape)
    check_grads(weighted(op, x, wrap=np.sin), x)


@pytest.mark.parametrize("consumer", ["reshape", "matmul"])
def test_unit_dim_value_stored_and_read(consumer):
    # r (4, 1) feeds an elementwise sin() and a consumer that needs it in memory: the nest that
    # stores r must read it as the local it stored, not load it (a regression test: the load was
    # once spelled x[i0, 0], missed the local, and was hoisted above the store).
    x, y = rand((4, 1), -1, 1, "unit-x"), rand((1, 3), -1, 1, "unit-y")
    w = weights((4, 1), "unit")

    def f(x, y):
        r = np.exp(x)
        used = np.reshape(r, (2, 2)) if consumer == "reshape" else r @ y
        return np.sum(np.sin(r) * w) + np.sum(used * used)

    check_grads(f, x, y, argnum=(0, 1))


def test_view_chain():
    # transpose, slice, reshape, index and broadcast composed, each reading through the others.
    x = rand((2, 3, 4), -2, 2, "chain")

    def op(x):
        y = np.transpose(x, (2, 0, 1))[1:, :, ::2]  # (3, 2, 2)
        z = y.reshape(6, 2).T  # (2, 6)
        return z[:, None, 1:] * x[0, :, :1]  # (2, 3, 5)

    check_grads(weighted(op, x, wrap=np.sin), x)


# ------------------------------------------------------------------------------------------------
# Matrix products: every 1-D / 2-D combination
# ------------------------------------------------------------------------------------------------

MATMUL_CASES = [
    ("@-4:4", (4,), (4,), lambda a, b: a @ b),
    ("@-3x4:4", (3, 4), (4,), lambda a, b: a @ b),
    ("@-4:4x3", (4,), (4, 3), lambda a, b: a @ b),
    ("@-3x4:4x2", (3, 4), (4, 2), lambda a, b: a @ b),
    ("matmul-4:4x3", (4,), (4, 3), lambda a, b: np.matmul(a, b)),
    ("dot-4:4", (4,), (4,), lambda a, b: np.dot(a, b)),
    ("dot-3x4:4x2", (3, 4), (4, 2), lambda a, b: np.dot(a, b)),
]


@pytest.mark.parametrize("sa,sb,op", [pytest.param(a, b, f, id=i) for i, a, b, f in MATMUL_CASES])
def test_matmul(sa, sb, op):
    a, b = rand(sa, -2, 2, "mm-a", sa, sb), rand(sb, -2, 2, "mm-b", sa, sb)
    check_grads(weighted(op, a, b, wrap=np.sin), a, b, argnum=(0, 1))


def test_matmul_same_argument_both_sides():
    # M.T @ M: one argument feeds both operands, so both adjoints accumulate into it.
    m = rand((4, 3), -1, 1, "mtm")
    check_grads(weighted(lambda m: m.T @ m, m, wrap=np.sin), m)


def test_matmul_of_strided_slice():
    x, m = rand((6, 3), -1, 1, "sl-x"), rand((3, 2), -1, 1, "sl-m")
    check_grads(weighted(lambda x, m: x[::2] @ m + x[1::2, ::-1] @ m, x, m, wrap=np.sin), x, m,
                argnum=(0, 1))


def test_matmul_chain_three_arguments():
    a, b, c = rand((2, 3), -1, 1, "ca"), rand((3, 4), -1, 1, "cb"), rand((4,), -1, 1, "cc")
    check_grads(weighted(lambda a, b, c: np.tanh(a @ b) @ c, a, b, c), a, b, c, argnum=(0, 1, 2))


# ------------------------------------------------------------------------------------------------
# Powers
# ------------------------------------------------------------------------------------------------

POW_CASES = [
    # Integer-valued exponents on negative bases: the exponent is not differentiated, so its
    # derivative (which needs log(base)) must not leak NaN into the result.
    ("x**2-negative-base", lambda x: x ** 2, (-2.0, 2.0)),
    ("x**3-negative-base", lambda x: x ** 3, (-2.0, 2.0)),
    ("x**4-negative-base", lambda x: x ** 4, (-2.0, 2.0)),
    ("x**-0.5", lambda x: x ** -0.5, (0.3, 3.0)),
    ("x**0.5", lambda x: x ** 0.5, (0.3, 3.0)),
    ("x**-1", lambda x: x ** -1, (0.3, 3.0)),
    ("2.0**x", lambda x: 2.0 ** x, (-2.0, 2.0)),
]


@pytest.mark.parametrize("op,domain", [pytest.param(f, d, id=i) for i, f, d in POW_CASES])
def test_pow_scalar_exponent(op, domain):
    x = rand((3, 4), *domain, "pow", domain)
    check_grads(weighted(op, x), x)


@pytest.mark.parametrize("argnum", [0, 1], ids=_argnum_id)
def test_pow_array_exponent_broadcast(argnum):
    # (3, 4) ** (4,): positive base, exponents of both signs, each argument on its own.
    x, p = rand((3, 4), 0.5, 2.0, "powb"), rand((4,), -1.5, 2.5, "powp")
    check_grads(weighted(lambda x, p: np.power(x, p) if argnum else x ** p, x, p), x, p,
                argnum=argnum)


def test_pow_closure_exponent_array():
    x, p = rand((3, 4), 0.5, 2.0, "powc"), rand((3, 1), -1.5, 2.5, "powcp")
    check_grads(weighted(lambda x: x ** p, x), x)


# ------------------------------------------------------------------------------------------------
# Composite functions: a value reused many times (fan-out), keepdims round trips
# ------------------------------------------------------------------------------------------------


def test_fanout_polynomial():
    x = rand((5,), -1.5, 1.5, "poly")

    def f(x):
        y = x * x
        z = y * y + 3.0 * y * x - x
        u = np.sin(z) * z + z / (1.0 + y) + x * z * y
        return np.sum(u * u) + np.sum(x) * np.sum(y)

    check_grads(f, x)


def test_fanout_overlapping_slices_rosenbrock():
    x = rand((7,), -2, 2, "rosen")

    def f(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2) + np.sum(
            x[2:] * x[:-2] * x[1:-1])

    check_grads(f, x)


def test_fanout_outer():
    x = rand((5,), -2, 2, "outer")
    check_grads(weighted(lambda x: np.tanh(x[:, None] * x[None, :] + x[:, None] - x), x), x)


def test_log_softmax_keepdims():
    logits = rand((3, 5), -3, 3, "lsm")
    labels = numpy.eye(5)[[1, 4, 0]]

    def f(z):
        m = np.max(z, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
        return -np.mean(np.sum(labels * (z - lse), axis=1))

    check_grads(f, logits)


def test_normalize_mean_var():
    x = rand((4, 3), -2, 2, "norm")

    w = weights((4, 3), "norm")

    def f(x):
        c = x - np.mean(x, axis=0)
        out = c / np.sqrt(np.mean(c * c, axis=0, keepdims=True) + 1e-3)
        return np.sum(out * w + np.abs(out) ** 3)

    check_grads(f, x)


# ------------------------------------------------------------------------------------------------
# Arrays captured from the closure are constants
# ------------------------------------------------------------------------------------------------


def test_closure_constants_broadcast_and_reused():
    C, D = rand((3, 4), -2, 2, "C"), rand((4,), -2, 2, "D")
    x = rand((3, 4), -2, 2, "cx")

    def f(x):
        return np.sum(np.sin(x * C + D) * C) + np.sum(D * x)

    with not_modified(C, D, what="differentiating a function that captured C and D"):
        check_grads(f, x)


def test_closure_least_squares():
    X, y = rand((6, 3), -2, 2, "X"), rand((6,), -2, 2, "y")
    w = rand((3,), -1, 1, "w")
    with not_modified(X, y):
        check_grads(lambda w: np.mean((X @ w - y) ** 2), w)


def test_closure_scalars():
    # A 0-d array, a NumPy scalar and a Python float captured from the closure.
    c0, c1, c2 = numpy.array(0.7), numpy.float64(-1.3), 2.5
    x = rand((3, 4), -2, 2, "cs")
    check_grads(weighted(lambda x: x * c0 + c1 * np.exp(x) / c2, x), x)


def test_closure_constant_is_the_argument_array():
    # The captured array and the argument are the same object: one is a constant, the other
    # the variable; the gradient of sum(x * x0) at x0 is x0, not 2 x0.
    x0 = rand((5,), -2, 2, "alias")
    _, g = check_grads(lambda x: np.sum(x * x0), x0)
    numpy.testing.assert_allclose(g, x0, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Argument structures and argnum
# ------------------------------------------------------------------------------------------------


def test_tuple_argument_mlp():
    X = rand((6, 3), -1, 1, "mlpX")
    Y = numpy.eye(2)[[0, 1, 1, 0, 1, 0]]
    params = (rand((3, 4), -1, 1, "W1"), rand((4,), -0.5, 0.5, "b1"),
              rand((4, 2), -1, 1, "W2"), 0.3)

    def f(params):
        W1, b1, W2, b2 = params
        h = np.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        m = np.max(logits, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
        return -np.sum(Y * (logits - lse)) / 6

    check_grads(f, params)


def test_dict_and_list_arguments():
    d = {"w": rand((3,), -1, 1, "dw"), "scale": 1.5, "m": rand((2, 3), -1, 1, "dm")}
    lst = [rand((2,), -1, 1, "l0"), rand((), -1, 1, "l1")]

    def f(d, lst):
        return np.sum(np.tanh(d["m"] @ d["w"] * d["scale"]) * lst[0]) + lst[1] * np.sum(d["w"])

    check_grads(f, d, lst, argnum=(0, 1))


def test_nested_structure():
    arg = ({"a": rand((3,), -1, 1, "na"), "b": [rand((2, 2), -1, 1, "nb"), 0.5]},
           rand((), -1, 1, "nc"))

    def f(arg):
        inner, c = arg
        return np.sum(np.sin(inner["a"]) * c) + np.sum(inner["b"][0] ** 2) * inner["b"][1]

    check_grads(f, arg)


@pytest.mark.parametrize("argnum", [2, (0, 2)], ids=_argnum_id)
def test_argnum_skips_middle_argument(argnum):
    # The middle argument is an array that is used but not differentiated.
    a, k, c = rand((4,), -2, 2, "aa"), rand((4,), -2, 2, "ak"), rand((2, 4), -2, 2, "ac")
    check_grads(lambda a, k, c: np.sum(np.sin(a * k) * c + c * c * k), a, k, c, argnum=argnum)


def test_argnum_float_argument():
    x, s = rand((3, 4), -1, 1, "fx"), 0.7
    check_grads(lambda x, s: np.sum(np.exp(x * s)) * s, x, s, argnum=1)


# ------------------------------------------------------------------------------------------------
# Calls after the first: new shapes, array layouts, static arguments, changed closures
# ------------------------------------------------------------------------------------------------


def test_same_function_new_shapes():
    f = lambda x: np.sum(np.sin(x) * x[::-1])
    for n in (3, 5, 3):
        x = rand((n,), -2, 2, "shapes", n)
        check_grads(f, x)


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "int64"])
def test_argument_layouts(layout):
    # The same function at the same shape, called with arrays that are not C-contiguous float64.
    base = rand((3, 4), -2, 2, "layout")
    f = lambda x: np.sum(np.tanh(x) * x.T[::-1].T + x[:, :1])
    check_grads(f, base)  # the C-contiguous float64 call, first
    if layout == "fortran":
        x = numpy.asfortranarray(base)
    elif layout == "strided":
        x = rand((6, 8), -2, 2, "layout-big")[::2, 1::2]
    elif layout == "readonly":
        x = base.copy()
        x.flags.writeable = False
    else:
        x = _rng("int").integers(-3, 4, (3, 4))
    assert x.shape == (3, 4)
    check_grads(f, x)


@pytest.mark.parametrize("n", [2, 0.5], ids=lambda n: f"n={n!r}")
def test_static_python_number_argument(n):
    # A non-differentiated Python number: its value is part of the computation.
    x = rand((4,), 0.3, 2.0, "static")
    f = lambda x, n: np.sum(np.sin(x) ** n * n)
    check_grads(f, x, n)


def test_closure_constant_changed_in_place():
    C = rand((4,), -2, 2, "inplace")
    f = lambda x: np.sum(np.sin(x) * C)
    x = rand((4,), -2, 2, "inplace-x")
    _, g1 = check_grads(f, x)
    numpy.testing.assert_allclose(g1, numpy.cos(x) * C, rtol=1e-12)
    C *= -3.0
    _, g2 = check_grads(f, x)
    numpy.testing.assert_allclose(g2, numpy.cos(x) * C, rtol=1e-12)


def test_closure_constant_rebound():
    C = rand((4,), -2, 2, "rebound")
    f = lambda x: np.sum(np.sin(x) * C)
    x = rand((4,), -2, 2, "rebound-x")
    check_grads(f, x)
    C = rand((4,), -2, 2, "rebound-2")  # f reads the new array, as Python does
    _, g = check_grads(f, x)
    numpy.testing.assert_allclose(g, numpy.cos(x) * C, rtol=1e-12)


def test_unused_argument_gets_zero_gradient():
    x, y = rand((3, 4), -2, 2, "unused-x"), rand((2,), -2, 2, "unused-y")
    _, (gx, gy) = check_grads(lambda x, y: np.sum(y * y), x, y, argnum=(0, 1))
    numpy.testing.assert_array_equal(gx, numpy.zeros((3, 4)))
    numpy.testing.assert_allclose(gy, 2 * y, rtol=1e-14)


def test_constant_function():
    x = rand((3,), -2, 2, "const-fn")
    _, g = check_grads(lambda x: 2.5, x)
    numpy.testing.assert_array_equal(g, numpy.zeros(3))


# ------------------------------------------------------------------------------------------------
# The grad API: return types, no aliasing, no reused output buffers
# ------------------------------------------------------------------------------------------------


def test_grad_of_float_is_float():
    f = lambda x: np.sin(x) * x
    g = check_not_modified(jitgrad.grad(f), 0.8)
    assert isinstance(g, float), f"grad of a float argument is a {type(g).__name__}: {g!r}"
    assert g == pytest.approx(numpy.cos(0.8) * 0.8 + numpy.sin(0.8), rel=1e-12)
    value, g2 = jitgrad.value_and_grad(f)(0.8)
    assert isinstance(g2, float) and g2 == pytest.approx(g, rel=1e-14)
    assert value == pytest.approx(numpy.sin(0.8) * 0.8, rel=1e-14)


def test_grad_of_0d_array_is_0d():
    # A 0-d array or a NumPy float64 scalar (autograd returns the latter): shape () float64.
    x = numpy.array(0.8)
    g = check_not_modified(jitgrad.grad(lambda x: np.sum(np.exp(x) * x)), x)
    assert isinstance(g, (numpy.ndarray, numpy.float64)) and numpy.shape(g) == (), repr(g)
    assert g.dtype == numpy.float64, repr(g)
    assert float(g) == pytest.approx(numpy.exp(0.8) * 1.8, rel=1e-12)


def test_grad_matches_value_and_grad_with_argnum_tuple():
    a, b = rand((3, 4), -1, 1, "ga"), rand((4,), -1, 1, "gb")
    f = lambda a, b: np.sum(np.tanh(a * b) * a)
    g = check_not_modified(jitgrad.grad(f, argnum=(0, 1)), a, b)
    _, g_ref = check_grads(f, a, b, argnum=(0, 1))
    assert isinstance(g, tuple) and len(g) == 2
    for gi, ri in zip(g, g_ref):
        numpy.testing.assert_allclose(gi, ri, rtol=1e-14, atol=0)


def test_gradient_is_fresh_memory():
    # grad(0.5 * sum(x*x)) == x: the result must not alias the argument, and a later call must
    # not overwrite an earlier call's result (a reused output buffer).
    f = lambda x: 0.5 * np.sum(x * x)
    x1, x2 = rand((5,), -2, 2, "fresh1"), rand((5,), -2, 2, "fresh2")
    g1 = jitgrad.grad(f)(x1)
    numpy.testing.assert_allclose(g1, x1, rtol=1e-14)
    assert not numpy.shares_memory(g1, x1), "the gradient shares memory with the argument"
    g1_copy = g1.copy()
    g2 = jitgrad.grad(f)(x2)
    numpy.testing.assert_allclose(g2, x2, rtol=1e-14)
    numpy.testing.assert_array_equal(g1, g1_copy, err_msg="a second call overwrote the first "
                                     "call's gradient")
    g2[:] = 0.0
    numpy.testing.assert_array_equal(jitgrad.grad(f)(x2), x2,
                                     err_msg="writing into a returned gradient changed later "
                                             "results")


# ------------------------------------------------------------------------------------------------
# The checker itself (runs against autograd; compiles nothing)
# ------------------------------------------------------------------------------------------------


class _Broken:
    """An autograd-backed `ad` module whose gradient or value is off by a small amount."""

    def __init__(self, where):
        self.where = where

    def value_and_grad(self, f, argnum=0):
        import autograd

        def h(*args):
            value, g = autograd.value_and_grad(f, argnum)(*args)
            if self.where == "value":
                return value + 1e-6, g
            if self.where == "mutate":
                args[0][0] += 1.0
                return value, g
            if self.where == "shape":
                return value, numpy.ravel(g)
            g = numpy.array(g, copy=True)
            g.flat[3] += 1e-4
            return value, g

        return h


@pytest.mark.parametrize("where", ["grad", "value", "mutate", "shape"])
def test_gradcheck_catches(where):
    pytest.importorskip("autograd")
    import autograd.numpy as anp

    x = rand((3, 4), -1, 1, "self")
    with pytest.raises(AssertionError):
        check_grads(lambda x: anp.sum(anp.sin(x) * x), x, ad=_Broken(where))


def test_gradcheck_accepts_autograd():
    autograd = pytest.importorskip("autograd")
    import autograd.numpy as anp

    a, b = rand((3, 4), -1, 1, "s1"), rand((4,), -1, 1, "s2")
    check_grads(lambda a, b: anp.sum(anp.tanh(a * b) * anp.exp(b)), a, b, argnum=(0, 1),
                ad=autograd)
    check_grads(lambda d: anp.sum(d["p"][0] ** 2) * d["p"][1], {"p": (a, 1.5)}, ad=autograd,
                strict_types=False)
