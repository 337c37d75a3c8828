"""The core of `jitgrad.numpy`: the functions that map onto the core primitives one to one
(arithmetic, comparisons, `exp`..., sum/max/min, reshape/transpose/broadcast, basic indexing,
2-D matrix products), and the helpers every family module uses."""

from __future__ import annotations

import sys

import numpy as _onp

from ..errors import ShapeError, TracingError
from ..ir import Span
from ..ops import REGISTRY, apply, elementwise_op, export
from ..primitives import Prim
from ..trace import Tracer, bind, innermost_trace, user_frame

SUPPORTED: dict = REGISTRY.setdefault("numpy", {})


def _export(fn, *names):
    return export("numpy", *names)(fn)


def _float_tracer(x) -> bool:
    return isinstance(x, Tracer) and x.dtype.kind == "f"


def _is_scalar(x, value) -> bool:
    return type(x) in (int, float) and x == value


def _shape(x) -> tuple[int, ...]:
    return x.shape if isinstance(x, Tracer) else _onp.shape(x)


# ------------------------------------------------------------------------------------------------
# Elementwise
# ------------------------------------------------------------------------------------------------


def _unary(prim: Prim, *names):
    def fn(x):
        return bind(prim, x)

    fn.__name__ = names[0]
    fn.__doc__ = f"Elementwise {names[0]}, as numpy.{names[0]}."
    return _export(fn, *names)


negative = _unary(Prim.neg, "negative")
exp = _unary(Prim.exp, "exp")
log = _unary(Prim.log, "log")
log1p = _unary(Prim.log1p, "log1p")
expm1 = _unary(Prim.expm1, "expm1")
sqrt = _unary(Prim.sqrt, "sqrt")
sin = _unary(Prim.sin, "sin")
cos = _unary(Prim.cos, "cos")
tan = _unary(Prim.tan, "tan")
tanh = _unary(Prim.tanh, "tanh")
sinh = _unary(Prim.sinh, "sinh")
cosh = _unary(Prim.cosh, "cosh")
arcsin = _unary(Prim.arcsin, "arcsin")
arccos = _unary(Prim.arccos, "arccos")
arctan = _unary(Prim.arctan, "arctan")
abs = _unary(Prim.abs, "abs", "absolute", "fabs")  # noqa: A001
absolute = fabs = abs
sign = _unary(Prim.sign, "sign")


def _arithmetic(prim: Prim, name: str, identity, commutative: bool):
    """An operator that leaves a float tracer unchanged when the other operand is its identity
    (`x * 1`, `x + 0`, `x ** 1`): the adjoint's seeds would otherwise litter the IR with them."""
    def fn(a, b):
        if _is_scalar(b, identity) and _float_tracer(a):
            return a
        if commutative and _is_scalar(a, identity) and _float_tracer(b):
            return b
        return bind(prim, a, b)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as numpy.{name}."
    return _export(fn)


add = _arithmetic(Prim.add, "add", 0, commutative=True)
subtract = _arithmetic(Prim.sub, "subtract", 0, commutative=False)
multiply = _arithmetic(Prim.mul, "multiply", 1, commutative=True)
divide = _arithmetic(Prim.div, "divide", 1, commutative=False)
true_divide = _export(divide, "true_divide")
power = _arithmetic(Prim.pow, "power", 1, commutative=False)


def _binary(prim: Prim, name: str):
    def fn(a, b):
        return bind(prim, a, b)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as numpy.{name}."
    return _export(fn)


maximum = _binary(Prim.maximum, "maximum")
minimum = _binary(Prim.minimum, "minimum")
less = _binary(Prim.lt, "less")
less_equal = _binary(Prim.le, "less_equal")
greater = _binary(Prim.gt, "greater")
greater_equal = _binary(Prim.ge, "greater_equal")
equal = _binary(Prim.eq, "equal")
not_equal = _binary(Prim.ne, "not_equal")


@_export
def square(x):
    return power(x, 2)


@_export
def reciprocal(x):
    return divide(1.0, x)


@_export
def clip(x, a_min, a_max):
    return minimum(maximum(x, a_min), a_max)


@_export
def where(condition, x=None, y=None):
    """Elementwise choice, as numpy.where(condition, x, y).  The one-argument form is not
    supported on traced values (its output shape depends on the data)."""
    if x is None or y is None:
        if isinstance(condition, Tracer):
            raise TracingError(f"np.where(condition) with one argument is not supported on "
                               f"traced values (at {user_frame()}); pass x and y")
        return _onp.where(condition)
    if isinstance(condition, Tracer) and condition.dtype.kind != "b":
        condition = not_equal(condition, 0)
    return bind(Prim.where, condition, x, y)


@_export
def logical_not(x):
    """Elementwise not, as numpy.logical_not."""
    return equal(x, 0) if isinstance(x, Tracer) else _onp.logical_not(x)


@_export
def logical_and(a, b):
    """Elementwise and, as numpy.logical_and."""
    return where(a, not_equal(b, 0), False)


@_export
def logical_or(a, b):
    """Elementwise or, as numpy.logical_or."""
    return where(a, True, not_equal(b, 0))


@_export
def logical_xor(a, b):
    """Elementwise exclusive or, as numpy.logical_xor."""
    return not_equal(not_equal(a, 0), not_equal(b, 0))


# ------------------------------------------------------------------------------------------------
# Reductions
# ------------------------------------------------------------------------------------------------


def _axes(axis, ndim: int, name: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, (int, _onp.integer)) or not -ndim <= a < ndim:
            raise ShapeError(f"{name}: axis {axis!r} is out of bounds for an array of "
                             f"dimension {ndim}")
        out.append(int(a) % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _reduction(prim: Prim, name: str):
    def fn(a, axis=None, keepdims=False, **unsupported):
        if unsupported:
            raise TracingError(f"np.{name}: arguments {sorted(unsupported)} are not supported")
        if not isinstance(a, Tracer):
            return getattr(_onp, name)(a, axis=axis, keepdims=keepdims)
        axes = _axes(axis, a.ndim, f"np.{name}")
        if not axes:
            return a
        return bind(prim, a, axes=axes, keepdims=bool(keepdims))

    fn.__name__ = name
    fn.__doc__ = f"numpy.{name} with `axis` (None, int or tuple) and `keepdims`."
    return fn


sum = _export(_reduction(Prim.reduce_sum, "sum"))  # noqa: A001
max = _export(_reduction(Prim.reduce_max, "max"), "max", "amax")  # noqa: A001
min = _export(_reduction(Prim.reduce_min, "min"), "min", "amin")  # noqa: A001
amax, amin = max, min


@_export
def mean(a, axis=None, keepdims=False):
    """numpy.mean with `axis` and `keepdims`."""
    if not isinstance(a, Tracer):
        return _onp.mean(a, axis=axis, keepdims=keepdims)
    axes = _axes(axis, a.ndim, "np.mean")
    count = int(_onp.prod([a.shape[d] for d in axes], dtype=_onp.int64))
    return divide(sum(a, axis=axes, keepdims=keepdims), float(count))


# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------


@_export
def reshape(a, newshape=None, order="C", *, shape=None):
    """numpy.reshape, with one -1 allowed, in C or Fortran ("F") order."""
    newshape = shape if newshape is None else newshape
    if not isinstance(a, Tracer):
        return _onp.reshape(a, newshape, order=order)
    if order not in ("C", "F", "A"):
        raise TracingError(f"np.reshape: order={order!r} is not supported (C, F or A are)")
    if order == "F":
        dims = (newshape,) if isinstance(newshape, (int, _onp.integer)) else tuple(newshape)
        return transpose(reshape(transpose(a), dims[::-1]))
    shape = (newshape,) if isinstance(newshape, (int, _onp.integer)) else tuple(newshape)
    if shape.count(-1) == 1:
        known = int(_onp.prod([n for n in shape if n != -1], dtype=_onp.int64))
        if known == 0 or a.size % known:
            raise ShapeError(f"np.reshape: cannot reshape an array of shape {a.shape} into "
                             f"shape {tuple(newshape)} (at {user_frame()})")
        shape = tuple(a.size // known if n == -1 else int(n) for n in shape)
    if shape == a.shape:
        return a
    return bind(Prim.reshape, a, shape=shape)


@_export
def transpose(a, axes=None):
    """numpy.transpose: reverse the axes, or permute them as `axes` says."""
    if not isinstance(a, Tracer):
        return _onp.transpose(a, axes)
    perm = tuple(reversed(range(a.ndim))) if axes is None else tuple(int(p) % a.ndim for p in axes)
    if sorted(perm) != list(range(a.ndim)):
        raise ShapeError(f"np.transpose: axes {axes} do not permute the {a.ndim} axes of an "
                         f"array of shape {a.shape}")
    if perm == tuple(range(a.ndim)):
        return a
    return bind(Prim.transpose, a, perm=perm)


@_export
def broadcast_to(a, shape):
    """numpy.broadcast_to.  Inside a trace, a broadcast Python scalar stays in the IR (a literal
    fill that loops read for free) rather than becoming a constant array."""
    shape = tuple(shape)
    if isinstance(a, Tracer) and a.shape == shape:
        return a
    trace = innermost_trace()
    if trace is not None and isinstance(a, (int, float)):
        return Tracer(trace, trace.emit(Prim.broadcast_to, (trace.atom(a),), {"shape": shape}))
    return bind(Prim.broadcast_to, a, shape=shape)


def _getitem(x: Tracer, index):
    """Basic indexing of a traced array: ints, slices, None and Ellipsis."""
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (list, _onp.ndarray, Tracer)) for i in items):
        advanced = sys.modules.get("jitgrad.numpy._indexing") or sys.modules.get(
            "jitgrad.numpy._arrays")
        if advanced is not None:  # integer arrays, lists, boolean masks: a gather
            return advanced.getitem(x, index)
    for i in items:
        if isinstance(i, Tracer) or isinstance(i, (list, _onp.ndarray)) or (
            not isinstance(i, (int, _onp.integer, slice, type(None), type(Ellipsis)))
        ):
            raise TracingError(
                f"indexing a traced array with {type(i).__name__} (at {user_frame()}) is not "
                f"supported yet: only basic indexing (ints, slices, None, ...) is. For a mask, "
                f"use np.where(mask, x, 0).")
    used = len([i for i in items if i is not None and i is not Ellipsis])
    if used > x.ndim:
        raise ShapeError(f"too many indices for a traced array of shape {x.shape}: "
                         f"{index!r} (at {user_frame()})")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1:]
    else:
        items = items + (slice(None),) * (x.ndim - used)
    spans, out_shape, dim = [], [], 0
    for i in items:
        if i is None:
            out_shape.append(1)
            continue
        n = x.shape[dim]
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            count = len(range(start, stop, step))
            spans.append(Span(start if count else 0, step, count))
            out_shape.append(count)
        else:
            if not -n <= i < n:
                raise ShapeError(f"index {i} is out of bounds for axis {dim} with size {n} "
                                 f"(at {user_frame()})")
            spans.append(int(i) % n)
        dim += 1
    out = x
    if any(not (isinstance(s, Span) and s == Span(0, 1, n)) for s, n in zip(spans, x.shape)):
        out = bind(Prim.slice, x, index=tuple(spans))
    return reshape(out, tuple(out_shape))


# ------------------------------------------------------------------------------------------------
# Linear algebra
# ------------------------------------------------------------------------------------------------


def _matmul(a, b, name: str):
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return getattr(_onp, name)(a, b)
    sa, sb = _shape(a), _shape(b)
    if len(sa) > 2 or len(sb) > 2:
        raise TracingError(f"np.{name} of operands with shapes {sa} and {sb} (at {user_frame()}): "
                           f"operands of more than 2 dimensions are not supported yet")
    if sa[-1] != sb[0]:
        raise ShapeError(f"np.{name}: shapes {sa} and {sb} are not aligned: {sa[-1]} (dim "
                         f"{len(sa) - 1}) != {sb[0]} (dim 0) (at {user_frame()})")
    a2 = reshape(a, (1, sa[0])) if len(sa) == 1 else a
    b2 = reshape(b, (sb[0], 1)) if len(sb) == 1 else b
    out = bind(Prim.matmul, a2, b2)
    return reshape(out, sa[:-1] + sb[1:])


@_export
def matmul(a, b):
    """numpy.matmul / `@` for 1-D and 2-D operands."""
    if not _shape(a) or not _shape(b):
        raise ShapeError("np.matmul: scalar operands are not allowed, use * instead")
    return _matmul(a, b, "matmul")


@_export
def dot(a, b):
    """numpy.dot for scalars, 1-D and 2-D operands."""
    if not _shape(a) or not _shape(b):
        return multiply(a, b)
    return _matmul(a, b, "dot")


# Complex numbers follow autograd's convention: a rule is the transpose of the derivative, not its
# conjugate transpose (`mul`'s VJP is g * y), and a real value's cotangent is the real part of
# what reaches it.  So the gradient of a real function of z = x + iy is df/dx - i df/dy.

_real = elementwise_op("real", numpy=_onp.real, code="({0}).real", dtype="real",
                       vjp=(lambda g, ans, x: g,))
_imag = elementwise_op("imag", numpy=_onp.imag, code="({0}).imag", dtype="real",
                       vjp=(lambda g, ans, x: multiply(g, -1j),))
_conj = elementwise_op("conj", numpy=_onp.conj, code="({0}).conjugate()", dtype="same",
                       vjp=(lambda g, ans, x: conj(g),))


def _is_complex(x) -> bool:
    return _onp.result_type(x.dtype if isinstance(x, Tracer) else x).kind == "c"


@_export
def real(x):
    """numpy.real."""
    if isinstance(x, Tracer):
        return apply(_real, x) if x.dtype.kind == "c" else x
    return _onp.real(x)


@_export
def imag(x):
    """numpy.imag (of a real array: zeros)."""
    if isinstance(x, Tracer):
        return apply(_imag, x) if x.dtype.kind == "c" else multiply(x, 0.0)
    return _onp.imag(x)


@_export
def conj(x):
    """numpy.conj."""
    if isinstance(x, Tracer):
        return apply(_conj, x) if x.dtype.kind == "c" else x
    return _onp.conj(x)


conjugate = _export(conj, "conjugate")


@_export
def angle(z, deg=False):
    """numpy.angle: the argument of z, in radians (or degrees)."""
    if not isinstance(z, Tracer):
        return _onp.angle(z, deg=deg)
    a = apply(_angle, z)
    return multiply(a, 180.0 / _onp.pi) if deg else a


_angle = elementwise_op(
    "angle", numpy=_onp.angle, code="math.atan2(({0}).imag, ({0}).real)", dtype="real",
    vjp=(lambda g, ans, z: g * conj(z * 1j) / abs(z) ** 2 if _is_complex(z)
         else multiply(g, 0.0),))


@_export
def shape(a):
    return _shape(a)


@_export
def ndim(a):
    return len(_shape(a))


@_export
def size(a):
    return int(_onp.prod(_shape(a), dtype=_onp.int64))


# ------------------------------------------------------------------------------------------------
# Creation
# ------------------------------------------------------------------------------------------------


def _like(value):
    def fn(a, dtype=None):
        shape = _shape(a)
        dtype = dtype or (a.dtype if hasattr(a, "dtype") else _onp.float64)
        return _onp.full(shape, value, dtype)

    fn.__name__ = "zeros_like" if value == 0 else "ones_like"
    return _export(fn)


zeros_like = _like(0)
ones_like = _like(1)
