"""Building and rearranging arrays: `array`/`asarray` of (nested) lists of traced values,
`concatenate`, `stack` and its variants, `split`, `expand_dims`, `squeeze`, `ravel`, `flip`,
`roll`, `tile`, `repeat`, `moveaxis`, `swapaxes`, `atleast_*d`; and indexing with integer
arrays, lists and boolean masks (a gather, whose adjoint is a scatter-add).

Everything but the gather is composed from core primitives: a concatenation writes each piece
into its span of a new array (`add_into`, whose adjoint is a slice), so pieces and their
adjoints fuse into the loops around them.  (`_shapes.py`, loaded after this file, may override
any of these with a more complete version.)
"""

from __future__ import annotations

import builtins
import math

import numpy as _onp

from .. import _jit
from ..errors import ShapeError, TracingError
from ..ir import Span
from ..ops import apply, call_op, elementwise_op, export
from ..primitives import Prim
from ..trace import Tracer, bind, user_frame
from ..trace import full as _zeros_ir
from . import _base as jnp


def _export(fn, *names):
    return export("numpy", *names)(fn)


def _traced(*values) -> bool:
    return builtins.any(isinstance(v, Tracer) for v in values)


def _dtype(x):
    return x.dtype if isinstance(x, Tracer) else _onp.result_type(x)


def _ndim(x) -> int:
    return x.ndim if isinstance(x, Tracer) else _onp.ndim(x)


# ------------------------------------------------------------------------------------------------
# Joining
# ------------------------------------------------------------------------------------------------


@_export
def concatenate(arrays, axis=0, dtype=None):
    """numpy.concatenate (axis=None flattens first)."""
    arrays = list(arrays)
    if not _traced(*arrays):
        return _onp.concatenate(arrays, axis=axis, dtype=dtype)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if not arrays:
        raise ShapeError("np.concatenate: need at least one array to concatenate")
    shapes = [jnp._shape(a) for a in arrays]
    nd = len(shapes[0])
    if nd == 0:
        raise ShapeError(f"np.concatenate: zero-dimensional arrays cannot be concatenated "
                         f"(at {user_frame()})")
    if not -nd <= axis < nd:
        raise ShapeError(f"np.concatenate: axis {axis} is out of bounds for arrays of "
                         f"dimension {nd} (at {user_frame()})")
    axis %= nd
    for s in shapes:
        if len(s) != nd or builtins.any(a != b for d, (a, b) in enumerate(zip(s, shapes[0]))
                                        if d != axis):
            listed = ", ".join(str(tuple(t)) for t in shapes)
            raise ShapeError(f"np.concatenate: the arrays' shapes {listed} differ outside axis "
                             f"{axis} (at {user_frame()})")
    result_dtype = _onp.dtype(dtype) if dtype is not None else _onp.result_type(
        *[_dtype(a) for a in arrays])
    out_shape = list(shapes[0])
    out_shape[axis] = builtins.sum(s[axis] for s in shapes)
    out, start = _zeros_ir(tuple(out_shape), 0, result_dtype), 0
    for a, s in zip(arrays, shapes):
        if s[axis]:
            if not isinstance(a, Tracer):
                a = _onp.asarray(a, dtype=result_dtype)
            elif a.dtype != result_dtype:
                a = a.astype(result_dtype)
            index = tuple(Span(start, 1, n) if d == axis else Span(0, 1, n)
                          for d, n in enumerate(s))
            out = bind(Prim.add_into, out, a, index=index)
        start += s[axis]
    return out


@_export
def stack(arrays, axis=0):
    """numpy.stack."""
    arrays = list(arrays)
    if not _traced(*arrays):
        return _onp.stack(arrays, axis=axis)
    shapes = {tuple(jnp._shape(a)) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f"np.stack: all input arrays must have the same shape, got "
                         f"{sorted(shapes)} (at {user_frame()})")
    nd = len(shapes.pop()) + 1
    if not -nd <= axis < nd:
        raise ShapeError(f"np.stack: axis {axis} is out of bounds for the result's {nd} "
                         f"dimensions (at {user_frame()})")
    return concatenate([expand_dims(a, axis % nd) for a in arrays], axis=axis % nd)


@_export
def hstack(tup):
    """numpy.hstack."""
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if _ndim(arrays[0]) == 1 else 1)


@_export
def vstack(tup):
    """numpy.vstack (and row_stack)."""
    return concatenate([atleast_2d(a) for a in tup], axis=0)


row_stack = _export(vstack, "row_stack")


@_export
def dstack(tup):
    """numpy.dstack."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


@_export
def column_stack(tup):
    """numpy.column_stack."""
    arrays = [jnp.reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in tup]
    return concatenate(arrays, axis=1)


@_export
def append(arr, values, axis=None):
    """numpy.append."""
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


def _nested(obj) -> bool:
    return isinstance(obj, (list, tuple)) and builtins.any(
        isinstance(x, Tracer) or _nested(x) for x in obj)


def _build(obj, dtype):
    if isinstance(obj, (list, tuple)):
        if not obj:
            return _onp.zeros((0,), dtype or _onp.float64)
        return stack([_build(x, dtype) for x in obj])
    if isinstance(obj, Tracer):
        return obj if dtype is None or obj.dtype == dtype else obj.astype(dtype)
    return _onp.asarray(obj, dtype=dtype)


@_export
def array(obj, dtype=None, copy=True, ndmin=0):
    """numpy.array, also of (nested) lists and tuples of traced values and numbers."""
    if isinstance(obj, Tracer) or _nested(obj):
        out = _build(obj, None if dtype is None else _onp.dtype(dtype))
        while _ndim(out) < ndmin:
            out = expand_dims(out, 0)
        return out
    return _onp.array(obj, dtype=dtype, copy=copy, ndmin=ndmin)


@_export
def asarray(a, dtype=None, order=None):
    """numpy.asarray, also of (nested) lists and tuples of traced values."""
    if isinstance(a, Tracer) or _nested(a):
        return array(a, dtype=dtype)
    return _onp.asarray(a, dtype=dtype, order=order)


# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------


def _axis(axis, nd, name):
    if not -nd <= axis < nd:
        raise ShapeError(f"np.{name}: axis {axis} is out of bounds for an array of dimension "
                         f"{nd} (at {user_frame()})")
    return axis % nd


@_export
def expand_dims(a, axis):
    """numpy.expand_dims (axis an int or a tuple)."""
    if not isinstance(a, Tracer):
        return _onp.expand_dims(a, axis)
    axes = axis if isinstance(axis, tuple) else (axis,)
    nd = a.ndim + len(axes)
    axes = sorted(_axis(x, nd, "expand_dims") for x in axes)
    shape = list(a.shape)
    for x in axes:
        shape.insert(x, 1)
    return jnp.reshape(a, tuple(shape))


@_export
def squeeze(a, axis=None):
    """numpy.squeeze (axis None, an int or a tuple)."""
    if not isinstance(a, Tracer):
        return _onp.squeeze(a, axis)
    if axis is None:
        axes = {d for d, n in enumerate(a.shape) if n == 1}
    else:
        axes = {_axis(x, a.ndim, "squeeze") for x in (axis if isinstance(axis, tuple)
                                                     else (axis,))}
        for x in axes:
            if a.shape[x] != 1:
                raise ShapeError(f"np.squeeze: cannot select an axis to squeeze out which has "
                                 f"size not equal to one (axis {x} of shape {a.shape})")
    return jnp.reshape(a, tuple(n for d, n in enumerate(a.shape) if d not in axes))


@_export
def ravel(a, order="C"):
    """numpy.ravel (C or F order)."""
    if not isinstance(a, Tracer):
        return _onp.ravel(a, order=order)
    return jnp.reshape(a, (-1,), order=order)


flatten = ravel  # the method x.flatten()
_export(ravel, "ravel", "flatten")


@_export
def atleast_1d(*arys):
    """numpy.atleast_1d."""
    out = [jnp.reshape(a, (1,)) if _ndim(a) == 0 else a for a in arys]
    return out[0] if len(out) == 1 else out


@_export
def atleast_2d(*arys):
    """numpy.atleast_2d."""
    out = []
    for a in arys:
        nd = _ndim(a)
        out.append(jnp.reshape(a, (1,) * (2 - nd) + tuple(jnp._shape(a))) if nd < 2 else a)
    return out[0] if len(out) == 1 else out


@_export
def atleast_3d(*arys):
    """numpy.atleast_3d (a 1-D array becomes (1, n, 1), a 2-D one (m, n, 1))."""
    out = []
    for a in arys:
        shape, nd = tuple(jnp._shape(a)), _ndim(a)
        new = {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}.get(nd, shape)
        out.append(jnp.reshape(a, new) if nd < 3 else a)
    return out[0] if len(out) == 1 else out


@_export
def moveaxis(a, source, destination):
    """numpy.moveaxis."""
    if not isinstance(a, Tracer):
        return _onp.moveaxis(a, source, destination)
    src = [_axis(s, a.ndim, "moveaxis") for s in (source if isinstance(source, (tuple, list))
                                                  else (source,))]
    dst = [_axis(s, a.ndim, "moveaxis") for s in (destination if isinstance(
        destination, (tuple, list)) else (destination,))]
    order = [d for d in range(a.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return jnp.transpose(a, tuple(order))


@_export
def swapaxes(a, axis1, axis2):
    """numpy.swapaxes."""
    if not isinstance(a, Tracer):
        return _onp.swapaxes(a, axis1, axis2)
    perm = list(range(a.ndim))
    i, j = _axis(axis1, a.ndim, "swapaxes"), _axis(axis2, a.ndim, "swapaxes")
    perm[i], perm[j] = perm[j], perm[i]
    return jnp.transpose(a, tuple(perm))


@_export
def rollaxis(a, axis, start=0):
    """numpy.rollaxis."""
    if not isinstance(a, Tracer):
        return _onp.rollaxis(a, axis, start)
    axis = _axis(axis, a.ndim, "rollaxis")
    start = start % (a.ndim + 1) if start < 0 else start
    if axis < start:
        start -= 1
    return moveaxis(a, axis, start)


@_export
def flip(m, axis=None):
    """numpy.flip (axis None, an int or a tuple)."""
    if not isinstance(m, Tracer):
        return _onp.flip(m, axis)
    axes = range(m.ndim) if axis is None else [
        _axis(x, m.ndim, "flip") for x in (axis if isinstance(axis, tuple) else (axis,))]
    index = [slice(None)] * m.ndim
    for x in axes:
        index[x] = slice(None, None, -1)
    return m[tuple(index)]


@_export
def fliplr(m):
    """numpy.fliplr."""
    return flip(m, 1)


@_export
def flipud(m):
    """numpy.flipud."""
    return flip(m, 0)


@_export
def roll(a, shift, axis=None):
    """numpy.roll (shift and axis ints or tuples; axis None rolls the flattened array)."""
    if not isinstance(a, Tracer):
        return _onp.roll(a, shift, axis)
    if axis is None:
        return jnp.reshape(roll(ravel(a), shift, 0), a.shape)
    shifts = shift if isinstance(shift, tuple) else (shift,)
    axes = axis if isinstance(axis, tuple) else (axis,)
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    for s, x in zip(shifts, axes):
        x = _axis(x, a.ndim, "roll")
        n = a.shape[x]
        s = int(s) % n if n else 0
        if s:
            head = [slice(None)] * a.ndim
            tail = [slice(None)] * a.ndim
            head[x], tail[x] = slice(n - s, None), slice(None, n - s)
            a = concatenate([a[tuple(head)], a[tuple(tail)]], axis=x)
    return a


@_export
def tile(A, reps):
    """numpy.tile."""
    if not isinstance(A, Tracer):
        return _onp.tile(A, reps)
    reps = (reps,) if isinstance(reps, (int, _onp.integer)) else tuple(reps)
    nd = builtins.max(len(reps), A.ndim)
    reps = (1,) * (nd - len(reps)) + reps
    a = jnp.reshape(A, (1,) * (nd - A.ndim) + A.shape)
    # (r0, n0, r1, n1, ...) by broadcasting, then merged pairwise
    spread = jnp.reshape(a, tuple(x for n in a.shape for x in (1, n)))
    big = jnp.broadcast_to(spread, tuple(x for r, n in zip(reps, a.shape) for x in (r, n)))
    return jnp.reshape(big, tuple(r * n for r, n in zip(reps, a.shape)))


@_export
def repeat(a, repeats, axis=None):
    """numpy.repeat with an int `repeats` (or one per element, given concretely)."""
    if not isinstance(a, Tracer):
        return _onp.repeat(a, repeats, axis)
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axis(axis, a.ndim, "repeat")
    if isinstance(repeats, (int, _onp.integer)):
        shape = a.shape
        spread = jnp.reshape(a, shape[:axis + 1] + (1,) + shape[axis + 1:])
        big = jnp.broadcast_to(spread, shape[:axis + 1] + (int(repeats),) + shape[axis + 1:])
        return jnp.reshape(big, shape[:axis] + (shape[axis] * int(repeats),) + shape[axis + 1:])
    counts = _onp.asarray(repeats)
    index = [slice(None)] * a.ndim
    index[axis] = _onp.repeat(_onp.arange(a.shape[axis]), counts)
    return a[tuple(index)]


def _sections(n, indices_or_sections, name, even):
    if isinstance(indices_or_sections, (int, _onp.integer)):
        k = int(indices_or_sections)
        if even and n % k:
            raise ShapeError(f"np.{name}: array split does not result in an equal division "
                             f"({n} into {k})")
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        return _onp.cumsum([0] + sizes).tolist()
    return [0] + [int(i) for i in indices_or_sections] + [n]


@_export
def split(ary, indices_or_sections, axis=0):
    """numpy.split."""
    return _split(ary, indices_or_sections, axis, "split", True)


@_export
def array_split(ary, indices_or_sections, axis=0):
    """numpy.array_split."""
    return _split(ary, indices_or_sections, axis, "array_split", False)


def _split(ary, indices_or_sections, axis, name, even):
    if not isinstance(ary, Tracer):
        return getattr(_onp, name)(ary, indices_or_sections, axis)
    axis = _axis(axis, ary.ndim, name)
    n = ary.shape[axis]
    bounds = _sections(n, indices_or_sections, name, even)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        index = [slice(None)] * ary.ndim
        index[axis] = slice(builtins.min(lo, n), builtins.min(builtins.max(hi, lo), n))
        out.append(ary[tuple(index)])
    return out


@_export
def hsplit(ary, indices_or_sections):
    """numpy.hsplit."""
    return split(ary, indices_or_sections, 1 if _ndim(ary) > 1 else 0)


@_export
def vsplit(ary, indices_or_sections):
    """numpy.vsplit."""
    return split(ary, indices_or_sections, 0)


@_export
def dsplit(ary, indices_or_sections):
    """numpy.dsplit."""
    return split(ary, indices_or_sections, 2)


# ------------------------------------------------------------------------------------------------
# Indexing with integer arrays and boolean masks: a gather, and its adjoint a scatter-add
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _gather_kernel(x, positions):
    flat = x.reshape(-1) if x.flags.c_contiguous else x.copy().reshape(-1)
    where = positions.reshape(-1)
    out = _onp.empty(where.size, x.dtype)
    for i in range(where.size):
        out[i] = flat[where[i]]
    return out.reshape(positions.shape)


@_jit.njit(cache=True, nogil=True)
def _scatter_add_kernel(g, positions, base):
    out = base.copy()
    flat = out.reshape(-1)
    where = positions.reshape(-1)
    values = g.reshape(-1) if g.flags.c_contiguous else g.copy().reshape(-1)
    for i in range(where.size):
        flat[where[i]] += values[i]
    return out


def _gather_vjp(g, ans, x, positions):
    return apply(scatter_add, g, positions, _zeros_ir(x.shape, 0.0, g.dtype))


gather = call_op(
    "gather", numpy=lambda x, positions: _onp.asarray(x).reshape(-1)[positions],
    kernel=_gather_kernel, shape=lambda x, positions: [(positions.shape, x.dtype)],
    vjp=(_gather_vjp, None))


def _scatter_numpy(g, positions, base):
    out = _onp.array(base, copy=True)
    _onp.add.at(out.reshape(-1), positions, g)
    return out


scatter_add = call_op(
    "scatter_add", numpy=_scatter_numpy, kernel=_scatter_add_kernel,
    shape=lambda g, positions, base: [(base.shape, base.dtype)],
    vjp=(lambda g, ans, update, positions, base: apply(gather, g, positions), None,
         lambda g, ans, update, positions, base: g))


def _kind(i) -> str:
    a = _onp.asarray(i) if not isinstance(i, Tracer) else i
    if a.dtype.kind == "b":
        return f"a boolean mask of shape {tuple(a.shape)}"
    return f"an integer array of shape {tuple(a.shape)}"


@_jit.njit(cache=True, nogil=True)
def _index_in_range_scalar(i, n):
    if i < -n or i >= n:
        raise IndexError("an index computed from traced values is out of bounds for its axis")
    return i + n if i < 0 else i


def _index_in_range_numpy(i, n):
    i = _onp.asarray(i)
    if _onp.any((i < -n) | (i >= n)):
        raise IndexError(f"an index computed from traced values is out of bounds for an axis "
                         f"of size {n}")
    return _onp.where(i < 0, i + n, i)


# A traced index along an axis of size n, checked (NumPy's IndexError, never a read out of
# bounds) and made non-negative.
_index_in_range = elementwise_op("index_in_range", numpy=_index_in_range_numpy,
                                 scalar=_index_in_range_scalar, dtype="same", vjp=None,
                                 static=("n",))


def _concrete_item(i):
    """An index item as NumPy takes it; a traced integer array stays a Tracer."""
    if isinstance(i, Tracer):
        value = i._known()
        if value is not None:
            return value
        if i.dtype.kind == "b":
            raise TracingError(
                f"indexing a traced array with {_kind(i)} computed from traced values (at "
                f"{user_frame()}): the result's shape would depend on the values; use "
                f"np.where(mask, x, 0)")
        if i.dtype.kind not in "iu":
            raise TracingError(f"an index array of dtype {i.dtype} (at {user_frame()}): "
                               f"indices must be integers or booleans")
        return i
    if isinstance(i, list):
        i = _onp.asarray(i)
        if i.dtype.kind not in "biu":
            raise TracingError(f"an index list of {i.dtype} values (at {user_frame()}): "
                               f"indices must be integers or booleans")
    if isinstance(i, _onp.ndarray) and i.dtype.kind not in "biu":
        raise TracingError(f"an index array of dtype {i.dtype} (at {user_frame()}): "
                           f"indices must be integers or booleans")
    return i


def _axes_of(items, ndim) -> list:
    """The first axis of the indexed array each index item applies to."""
    def width(i):
        if i is None or i is Ellipsis:
            return 0
        if isinstance(i, _onp.ndarray) and i.dtype.kind == "b":
            return i.ndim
        return 1

    axes, axis = [], 0
    for i in items:
        axes.append(axis)
        axis += ndim - builtins.sum(width(j) for j in items) if i is Ellipsis else width(i)
    return axes


def _positions(shape, key):
    return _onp.arange(math.prod(shape), dtype=_onp.int64).reshape(shape)[key]


def getitem(x: Tracer, index):
    """x[index] with integer arrays, lists or boolean masks among the index items (and ints,
    slices, None, Ellipsis), exactly as NumPy indexes: a gather of flat positions.  Positions are
    computed by NumPy from a concrete index; an integer array computed from traced values adds
    its (checked) values times its axis' stride to the positions of a zero index in its place."""
    items = [_concrete_item(i) for i in (index if isinstance(index, tuple) else (index,))]
    traced = [k for k, i in enumerate(items) if isinstance(i, Tracer)]
    concrete = [_onp.zeros(i.shape, _onp.int64) if k in traced else i
                for k, i in enumerate(items)]
    try:
        positions = _positions(x.shape, tuple(concrete))
    except IndexError as e:
        kinds = ", ".join(_kind(i) for i in items if isinstance(i, (_onp.ndarray, Tracer)))
        raise ShapeError(f"indexing a traced array of shape {x.shape} with {kinds}: {e} "
                         f"(at {user_frame()})") from None
    positions = _onp.ascontiguousarray(positions)
    axes = _axes_of(concrete, x.ndim)
    for k in traced:
        positions = jnp.add(positions, _traced_offsets(x.shape, concrete, k, axes[k], items[k]))
    if positions.ndim == 0:  # kernels take 0-d values as scalars: gather one, then reshape
        return jnp.reshape(apply(gather, x, jnp.reshape(positions, (1,))), ())
    return apply(gather, x, positions)


def _traced_offsets(shape, concrete, k, axis, index: Tracer):
    """The flat offsets that the traced integer array `index`, item k of the index, adds at each
    position of the result: its value there (checked, made non-negative) times the stride of
    `axis`.  Which of its elements lands where is found by indexing with distinct values."""
    n, stride = shape[axis], math.prod(shape[axis + 1:])
    values = jnp.multiply(apply(_index_in_range, index.astype(_onp.int64), n=n), stride)
    if index.size == 1:  # broadcast as a scalar
        return jnp.reshape(values, ())
    if len(concrete) == len(shape) and all(
            isinstance(c, _onp.ndarray) and c.dtype.kind in "iu" and c.shape == index.shape
            for c in concrete):
        return values  # x[i, j] with i, j of one shape: element e of i lands at e
    probe_shape = list(shape)
    probe_shape[axis] = builtins.max(n, index.size)
    probe = list(concrete)
    probe[k] = _onp.arange(index.size, dtype=_onp.int64).reshape(index.shape)
    which = _onp.unravel_index(_positions(tuple(probe_shape), tuple(probe)), probe_shape)[axis]
    if which.size == index.size and _onp.array_equal(which.ravel(), _onp.arange(index.size)):
        return jnp.reshape(values, which.shape)  # each element once, in order: x[i, j] of 1-d i, j
    return apply(gather, values, _onp.ascontiguousarray(which))


@_jit.njit(cache=True, nogil=True)
def _add_rows_kernel(a, b):
    return a + b


# The sum of two values with as many rows as a loop ran (the cotangents of a loop's saved values,
# ad.py): a Numba call, since loop nests need their sizes.
add_rows = call_op("add_rows", numpy=_onp.add, kernel=_add_rows_kernel,
                   shape=lambda a, b: [(tuple(a.shape), a.dtype)],
                   vjp=(lambda g, ans, a, b: g, lambda g, ans, a, b: g))


# ------------------------------------------------------------------------------------------------
# Sorting: values and the permutation that sorts them; the adjoint scatters through it
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _sort_rows_kernel(x):
    perm = _onp.empty(x.shape, _onp.int64)
    out = _onp.empty_like(x)
    for i in range(x.shape[0]):
        p = _onp.argsort(x[i], kind="mergesort")
        perm[i] = p
        out[i] = x[i][p]
    return out, perm


def _sort_rows_numpy(x):
    perm = _onp.argsort(x, axis=-1, kind="stable")
    return _onp.take_along_axis(x, perm, axis=-1), perm


def _sort_vjp(g, ans, x):
    g_sorted, _ = g
    _, perm = ans
    rows, n = x.shape
    # the element that went to position j of row i came from perm[i, j]
    flat = perm + _onp.arange(rows, dtype=_onp.int64)[:, None] * n
    return apply(scatter_add, g_sorted, flat, _zeros_ir(x.shape, 0.0, g_sorted.dtype))


sort_rows = call_op(
    "sort_rows", numpy=_sort_rows_numpy, kernel=_sort_rows_kernel,
    shape=lambda x: [(x.shape, x.dtype), (x.shape, _onp.dtype(_onp.int64))],
    vjp=(_sort_vjp,))


def _along_last(a, axis, name, fn):
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axis(axis, a.ndim, name)
    moved = moveaxis(a, axis, -1)
    lead = moved.shape[:-1]
    rows = jnp.reshape(moved, (int(_onp.prod(lead, dtype=_onp.int64)), moved.shape[-1]))
    out = fn(rows)
    return moveaxis(jnp.reshape(out, lead + (moved.shape[-1],)), -1, axis)


@_export
def sort(a, axis=-1, kind=None, order=None):
    """numpy.sort (a stable sort; ties keep their order, so each gets its own gradient)."""
    if not isinstance(a, Tracer):
        return _onp.sort(a, axis=axis, kind=kind, order=order)
    if a.dtype.kind == "c":
        raise TracingError(f"np.sort of a complex traced array (at {user_frame()})")
    return _along_last(a, axis, "sort", lambda rows: apply(sort_rows, rows)[0])


@_export
def argsort(a, axis=-1, kind=None, order=None):
    """numpy.argsort (stable); an integer result, with no gradient."""
    if not isinstance(a, Tracer):
        return _onp.argsort(a, axis=axis, kind=kind, order=order)
    return _along_last(a, axis, "argsort", lambda rows: apply(sort_rows, rows)[1])


@_export
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """numpy.partition, as a full sort (a valid partition: the kth element in place, smaller
    before, larger after)."""
    if not isinstance(a, Tracer):
        return _onp.partition(a, kth, axis=axis, kind=kind, order=order)
    return sort(a, axis=axis)


# ------------------------------------------------------------------------------------------------
# Compositions
# ------------------------------------------------------------------------------------------------


@_export
def rot90(m, k=1, axes=(0, 1)):
    """numpy.rot90."""
    if not isinstance(m, Tracer):
        return _onp.rot90(m, k, axes)
    k %= 4
    a0, a1 = axes
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return jnp.transpose(flip(m, a1), tuple(perm))
    return flip(jnp.transpose(m, tuple(perm)), a1)


@_export
def diff(a, n=1, axis=-1):
    """numpy.diff (n-th differences along axis)."""
    if not isinstance(a, Tracer):
        return _onp.diff(a, n=n, axis=axis)
    axis = _axis(axis, a.ndim, "diff")
    for _ in range(n):
        hi = [slice(None)] * a.ndim
        lo = [slice(None)] * a.ndim
        hi[axis], lo[axis] = slice(1, None), slice(None, -1)
        a = a[tuple(hi)] - a[tuple(lo)]
    return a


@_export
def gradient(f, *varargs, axis=None, edge_order=1):
    """numpy.gradient with unit or scalar spacings and edge_order=1."""
    if not isinstance(f, Tracer):
        return _onp.gradient(f, *varargs, axis=axis, edge_order=edge_order)
    if edge_order != 1:
        raise TracingError("np.gradient: only edge_order=1 is supported on traced values")
    axes = list(range(f.ndim)) if axis is None else (
        [axis] if isinstance(axis, int) else list(axis))
    spacings = list(varargs) if varargs else [1.0] * len(axes)
    if len(spacings) == 1:
        spacings = spacings * len(axes)
    out = []
    for x, h in zip(axes, spacings):
        x = _axis(x, f.ndim, "gradient")

        def part(s):
            index = [slice(None)] * f.ndim
            index[x] = s
            return f[tuple(index)]

        interior = (part(slice(2, None)) - part(slice(None, -2))) / (2.0 * h)
        first = (part(slice(1, 2)) - part(slice(0, 1))) / h
        last = (part(slice(-1, None)) - part(slice(-2, -1))) / h
        out.append(concatenate([first, interior, last], axis=x))
    return out[0] if len(out) == 1 else out


@_export
def select(condlist, choicelist, default=0):
    """numpy.select: the first true condition's choice, elementwise."""
    if not _traced(*condlist, *choicelist, default):
        return _onp.select(condlist, choicelist, default)
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = jnp.where(cond, choice, out)
    return out


@_export
def full(shape, fill_value, dtype=None, order="C"):
    """numpy.full (a traced fill value broadcast to the shape)."""
    if not isinstance(fill_value, Tracer):
        return _onp.full(shape, fill_value, dtype=dtype, order=order)
    shape = (shape,) if isinstance(shape, (int, _onp.integer)) else tuple(shape)
    value = fill_value if dtype is None else fill_value.astype(dtype)
    return jnp.broadcast_to(value, shape)


@_export
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """numpy.linspace with traced start and stop (scalars or arrays)."""
    if not _traced(start, stop):
        return _onp.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    div = (num - 1) if endpoint else num
    steps = _onp.arange(num, dtype=float) / (div if div > 0 else 1)
    shape = jnp._shape(start) if _ndim(start) >= _ndim(stop) else jnp._shape(stop)
    grid = jnp.reshape(steps, (num,) + (1,) * len(shape))
    out = start + (stop - start) * grid
    if endpoint and num > 1:
        out = concatenate([out[:-1], jnp.reshape(jnp.broadcast_to(stop, shape) * 1.0,
                                                 (1,) + tuple(shape))], axis=0)
    if axis != 0:
        out = moveaxis(out, 0, axis)
    step = (stop - start) / div if div > 0 else float("nan")
    return (out, step) if retstep else out


@_export
def pad(array, pad_width, mode="constant", constant_values=0):
    """numpy.pad in modes constant, edge, reflect, symmetric and wrap."""
    if not isinstance(array, Tracer):
        if mode == "constant":
            return _onp.pad(array, pad_width, mode=mode, constant_values=constant_values)
        return _onp.pad(array, pad_width, mode=mode)
    widths = _onp.broadcast_to(_onp.asarray(pad_width, dtype=int), (array.ndim, 2))
    out = array
    for x, (before, after) in enumerate(widths.tolist()):
        n = out.shape[x]

        def part(s):
            index = [slice(None)] * out.ndim
            index[x] = s
            return out[tuple(index)]

        if mode == "constant":
            shape = list(out.shape)
            pieces = []
            for count in (before, after):
                shape[x] = count
                pieces.append(_onp.full(tuple(shape), constant_values, dtype=out.dtype))
            left, right = pieces
        elif mode == "edge":
            left = repeat(part(slice(0, 1)), before, axis=x)
            right = repeat(part(slice(n - 1, n)), after, axis=x)
        elif mode in ("reflect", "symmetric", "wrap"):
            index_left, index_right = _pad_indices(n, before, after, mode)
            left, right = take(out, index_left, axis=x), take(out, index_right, axis=x)
        else:
            raise TracingError(f"np.pad: mode={mode!r} is not supported on traced values "
                               f"(constant, edge, reflect, symmetric and wrap are)")
        out = concatenate([left, out, right], axis=x)
    return out


def _pad_indices(n, before, after, mode):
    probe = _onp.pad(_onp.arange(n), (before, after), mode=mode)
    return probe[:before], probe[before + n:]


def _index_array(indices):
    return indices if isinstance(indices, Tracer) else _onp.asarray(indices)


@_export
def take(a, indices, axis=None):
    """numpy.take (indices concrete or traced)."""
    if not isinstance(a, Tracer) and not isinstance(indices, Tracer):
        return _onp.take(a, indices, axis=axis)
    if axis is None:
        return getitem(ravel(a), _index_array(indices))
    a = asarray(a)
    index = [slice(None)] * a.ndim
    index[_axis(axis, a.ndim, "take")] = _index_array(indices)
    return getitem(a, tuple(index))


@_export
def take_along_axis(arr, indices, axis):
    """numpy.take_along_axis (indices concrete or traced): advanced indexing with `indices` on
    `axis` and an open grid on the other axes."""
    if not isinstance(arr, Tracer) and not isinstance(indices, Tracer):
        return _onp.take_along_axis(arr, indices, axis)
    arr, indices = asarray(arr), _index_array(indices)
    if axis is None:
        arr, axis = ravel(arr), 0
    if indices.ndim != arr.ndim:
        raise ShapeError(f"np.take_along_axis: indices of shape {tuple(indices.shape)} and an "
                         f"array of shape {arr.shape} must have the same number of dimensions")
    axis = _axis(axis, arr.ndim, "take_along_axis")
    grid = [_onp.arange(n).reshape([-1 if d == k else 1 for d in range(arr.ndim)])
            for k, n in enumerate(arr.shape)]
    grid[axis] = indices
    return getitem(arr, tuple(grid))


@_export
def permute_dims(a, axes=None):
    """numpy.permute_dims (numpy.transpose)."""
    return jnp.transpose(a, axes)


@_export
def real_if_close(a, tol=100):
    """numpy.real_if_close: a real traced array is returned as it is."""
    if isinstance(a, Tracer) and a.dtype.kind == "c":
        raise TracingError("np.real_if_close of a complex traced array: whether the result is "
                           "real depends on the values; use np.real")
    return a if isinstance(a, Tracer) else _onp.real_if_close(a, tol)


# NumPy 2's aliases of the trigonometric and power functions
for _alias, _name in (("acos", "arccos"), ("acosh", "arccosh"), ("asin", "arcsin"),
                      ("asinh", "arcsinh"), ("atan", "arctan"), ("atan2", "arctan2"),
                      ("atanh", "arctanh"), ("pow", "power")):
    _target = export.__globals__["REGISTRY"]["numpy"].get(_name)
    if _target is not None:
        _export(_target, _alias)
