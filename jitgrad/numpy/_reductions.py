"""Reductions and scans beyond `_base.py`'s sum/max/min/mean: prod, var, std, average, nansum,
nanmean, ptp, cumsum, cumprod, argmax, argmin, all, any, count_nonzero.

Most are compositions.  The ops work on 2-D arrays, one row per result: callers move the reduced
(or scanned) axes last and flatten the rest (`_to_rows`).  `prod`'s gradient is the product of
the other elements (prefix times suffix products), so it is exact at zeros where autograd's
g * ans / x gives nan, and so is its second derivative; `cumprod`'s gradient is zero-safe too.
"""

from __future__ import annotations

import numpy as _onp

from .. import _jit
from ..errors import ShapeError, TracingError
from ..ops import apply, call_op, export, not_differentiable
from ..trace import Tracer, full, user_frame
from . import _base as jnp
from ._base import _axes

_INT64 = _onp.dtype(_onp.int64)


def _count(shape, axes) -> int:
    return int(_onp.prod([shape[d] for d in axes], dtype=_onp.int64))


def _reduced(shape, axes, keepdims) -> tuple:
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def _to_rows(x, axes):
    """`x` with the axes `axes` moved last and flattened, the others first and flattened: a 2-D
    array of one row per result."""
    keep = [d for d in range(x.ndim) if d not in axes]
    moved = jnp.transpose(x, tuple(keep) + tuple(axes))
    rows = _count(x.shape, keep)
    return jnp.reshape(moved, (rows, _count(x.shape, axes)))


def _no_unsupported(name, unsupported) -> None:
    if unsupported:
        raise TracingError(f"np.{name}: arguments {sorted(unsupported)} are not supported on "
                           f"traced values (at {user_frame()})")


def _accumulator_dtype(x):
    """NumPy's sum/prod dtype: integers and booleans widen to 64 bits."""
    if x.dtype.kind in "bi" and x.dtype != _INT64:
        return x.astype(_onp.int64)
    if x.dtype.kind == "u" and x.dtype.itemsize < 8:
        return x.astype(_onp.uint64)
    return x


# ------------------------------------------------------------------------------------------------
# prod: a row kernel; the gradient is the product of the others (prefix * suffix products)
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _prod_rows_kernel(x):
    out = _onp.ones(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i] *= x[i, j]
    return out


@_jit.njit(cache=True, nogil=True)
def _prod_others_kernel(x):
    # out[i, j] = prod_{k != j} x[i, k], without division.
    rows, n = x.shape
    out = _onp.empty((rows, n), x.dtype)
    for i in range(rows):
        acc = _onp.ones(1, x.dtype)[0]
        for j in range(n):
            out[i, j] = acc
            acc *= x[i, j]
        acc = _onp.ones(1, x.dtype)[0]
        for j in range(n - 1, -1, -1):
            out[i, j] *= acc
            acc *= x[i, j]
    return out


@_jit.njit(cache=True, nogil=True)
def _prod_others_vjp_kernel(x, u):
    # out[i, j] = sum_{l != j} u[i, l] prod_{k not in (l, j)} x[i, k], without division:
    # the terms l < j are A_j * suffix_{j+1}, those l > j prefix_{j-1} * B_j, with the
    # recurrences A_{j+1} = A_j x_j + u_j prefix_{j-1}, B_{j-1} = B_j x_j + u_j suffix_{j+1}.
    rows, n = x.shape
    out = _onp.empty((rows, n), x.dtype)
    pre = _onp.ones(n + 1, x.dtype)  # pre[j] = prod_{k < j}
    suf = _onp.ones(n + 1, x.dtype)  # suf[j] = prod_{k >= j}
    for i in range(rows):
        for j in range(n):
            pre[j + 1] = pre[j] * x[i, j]
        for j in range(n - 1, -1, -1):
            suf[j] = suf[j + 1] * x[i, j]
        a = 0.0 * pre[0]
        for j in range(n):
            out[i, j] = a * suf[j + 1]
            a = a * x[i, j] + u[i, j] * pre[j]
        b = 0.0 * pre[0]
        for j in range(n - 1, -1, -1):
            out[i, j] += pre[j] * b
            b = b * x[i, j] + u[i, j] * suf[j + 1]
    return out


def _prod_others_numpy(x):
    n = x.shape[1]
    out = _onp.empty_like(x)
    for j in range(n):
        out[:, j] = _onp.prod(_onp.delete(x, j, axis=1), axis=1)
    return out


def _prod_others_vjp_numpy(x, u):
    n = x.shape[1]
    out = _onp.zeros(x.shape, _onp.result_type(x, u))
    for j in range(n):
        for m in range(n):
            if m != j:
                out[:, j] += u[:, m] * _onp.prod(_onp.delete(x, [j, m], axis=1), axis=1)
    return out


_prod_others_vjp = call_op(
    "prod_others_vjp", numpy=_prod_others_vjp_numpy, kernel=_prod_others_vjp_kernel,
    shape=lambda x, u: [(x.shape, x.dtype)],
    vjp=(not_differentiable("np.prod's third derivative", "argument"),) * 2)
_prod_others = call_op(
    "prod_others", numpy=_prod_others_numpy, kernel=_prod_others_kernel,
    shape=lambda x: [(x.shape, x.dtype)],
    vjp=(lambda g, ans, x: apply(_prod_others_vjp, x, g),))
_prod_rows = call_op(
    "prod_rows", numpy=lambda x: _onp.prod(x, axis=1), kernel=_prod_rows_kernel,
    shape=lambda x: [((x.shape[0],), x.dtype)],
    vjp=(lambda g, ans, x: jnp.reshape(g, (x.shape[0], 1)) * apply(_prod_others, x),))


@export("numpy")
def prod(a, axis=None, dtype=None, out=None, keepdims=False, **unsupported):
    """numpy.prod with `axis` (None, int or tuple), `dtype` and `keepdims`.  The gradient is the
    product of the other elements: exact where elements are zero (autograd's is nan there)."""
    if not isinstance(a, Tracer):
        return _onp.prod(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("prod", unsupported)
    if out is not None:
        _no_unsupported("prod", ["out"])
    a = a.astype(dtype) if dtype is not None else _accumulator_dtype(a)
    axes = _axes(axis, a.ndim, "np.prod")
    result = apply(_prod_rows, _to_rows(a, axes))
    return jnp.reshape(result, _reduced(a.shape, axes, keepdims))


# ------------------------------------------------------------------------------------------------
# Statistics: compositions
# ------------------------------------------------------------------------------------------------


@export("numpy")
def mean(a, axis=None, dtype=None, out=None, keepdims=False, **unsupported):
    """numpy.mean with `axis`, `dtype` and `keepdims`."""
    if not isinstance(a, Tracer):
        return _onp.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("mean", list(unsupported) + (["out"] if out is not None else []))
    if dtype is not None:
        a = a.astype(dtype)
    return jnp.mean(a, axis=axis, keepdims=keepdims)


def _var(a, axis, ddof, keepdims, name):
    axes = _axes(axis, a.ndim, f"np.{name}")
    d = a - jnp.mean(a, axis=axes, keepdims=True)
    sq = jnp.real(d * jnp.conj(d)) if a.dtype.kind == "c" else d * d
    divisor = float(_onp.maximum(_count(a.shape, axes) - ddof, 0))
    return jnp.divide(jnp.sum(sq, axis=axes, keepdims=keepdims), divisor), axes


@export("numpy")
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **unsupported):
    """numpy.var with `axis`, `dtype`, `ddof` and `keepdims` (complex: the variance of |x|)."""
    if not isinstance(a, Tracer):
        return _onp.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                        **unsupported)
    _no_unsupported("var", list(unsupported) + (["out"] if out is not None else []))
    if dtype is not None:
        a = a.astype(dtype)
    return _var(a, axis, ddof, keepdims, "var")[0]


@export("numpy")
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **unsupported):
    """numpy.std with `axis`, `dtype`, `ddof` and `keepdims`.  Over one element (or none) it is
    a constant, with a zero gradient as autograd's (not sqrt's infinite slope at 0)."""
    if not isinstance(a, Tracer):
        return _onp.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                        **unsupported)
    _no_unsupported("std", list(unsupported) + (["out"] if out is not None else []))
    if dtype is not None:
        a = a.astype(dtype)
    v, axes = _var(a, axis, ddof, keepdims, "std")
    if _count(a.shape, axes) <= 1:
        with _onp.errstate(all="ignore"):
            value = _onp.std(_onp.zeros(a.shape, a.dtype), axis=axes, ddof=ddof,
                             keepdims=keepdims)
        return full(v.shape, float(_onp.asarray(value).flat[0]) if v.size else 0.0, v.dtype)
    return jnp.sqrt(v)


@export("numpy")
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """numpy.average with `axis`, `weights` (of a's shape, or 1-D along an int `axis`),
    `returned` and `keepdims`."""
    if not isinstance(a, Tracer) and not isinstance(weights, Tracer):
        return _onp.average(a, axis=axis, weights=weights, returned=returned, keepdims=keepdims)
    if not isinstance(a, Tracer):
        a = _onp.asarray(a)
    axes = _axes(axis, a.ndim, "np.average")
    if weights is None:
        avg = jnp.mean(a, axis=axes, keepdims=keepdims)
        scl = float(_count(a.shape, axes))
    else:
        wshape = jnp._shape(weights)
        if tuple(wshape) != a.shape:
            if axis is None:
                raise ShapeError(f"np.average: axis must be given when the shapes of a "
                                 f"{a.shape} and weights {tuple(wshape)} differ")
            if len(wshape) != 1 or len(axes) != 1 or wshape[0] != a.shape[axes[0]]:
                raise ShapeError(f"np.average: weights of shape {tuple(wshape)} do not fit "
                                 f"a of shape {a.shape} along axis {axis}")
            weights = jnp.reshape(weights, tuple(wshape[0] if d == axes[0] else 1
                                                 for d in range(a.ndim)))
        scl = jnp.sum(jnp.broadcast_to(weights, a.shape), axis=axes, keepdims=keepdims)
        avg = jnp.divide(jnp.sum(a * weights, axis=axes, keepdims=keepdims), scl)
    if not returned:
        return avg
    shape = jnp._shape(avg)
    if isinstance(scl, float):
        return avg, full(shape, scl, avg.dtype)
    return avg, jnp.broadcast_to(scl, shape)


@export("numpy")
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **unsupported):
    """numpy.nansum with `axis`, `dtype` and `keepdims`: NaNs count as zero (and get a zero
    gradient)."""
    if not isinstance(a, Tracer):
        return _onp.nansum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("nansum", list(unsupported) + (["out"] if out is not None else []))
    if dtype is not None:
        a = a.astype(dtype)
    if a.dtype.kind in "fc":
        a = jnp.where(jnp.not_equal(a, a), 0.0, a)
    return jnp.sum(_accumulator_dtype(a), axis=axis, keepdims=keepdims)


@export("numpy")
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **unsupported):
    """numpy.nanmean with `axis`, `dtype` and `keepdims`: the mean of the non-NaN elements."""
    if not isinstance(a, Tracer):
        return _onp.nanmean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("nanmean", list(unsupported) + (["out"] if out is not None else []))
    if dtype is not None:
        a = a.astype(dtype)
    if a.dtype.kind not in "fc":
        return jnp.mean(a, axis=axis, keepdims=keepdims)
    axes = _axes(axis, a.ndim, "np.nanmean")
    known = jnp.equal(a, a)
    total = jnp.sum(jnp.where(known, a, 0.0), axis=axes, keepdims=keepdims)
    count = jnp.sum(known, axis=axes, keepdims=keepdims).astype(_onp.finfo(a.dtype).dtype)
    return total / count


@export("numpy")
def ptp(a, axis=None, out=None, keepdims=False):
    """numpy.ptp (max - min) with `axis` and `keepdims`."""
    if not isinstance(a, Tracer):
        return _onp.ptp(a, axis=axis, out=out, keepdims=keepdims)
    _no_unsupported("ptp", ["out"] if out is not None else [])
    return jnp.max(a, axis=axis, keepdims=keepdims) - jnp.min(a, axis=axis, keepdims=keepdims)


# ------------------------------------------------------------------------------------------------
# Scans: cumsum, cumprod along the last axis of 2-D rows
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _cumsum_rows_kernel(x):
    rows, n = x.shape
    out = _onp.empty((rows, n), x.dtype)
    for i in range(rows):
        if n:
            acc = x[i, 0]
            out[i, 0] = acc
            for j in range(1, n):
                acc = acc + x[i, j]
                out[i, j] = acc
    return out


@_jit.njit(cache=True, nogil=True)
def _cumprod_rows_kernel(x):
    rows, n = x.shape
    out = _onp.empty((rows, n), x.dtype)
    for i in range(rows):
        if n:
            acc = x[i, 0]
            out[i, 0] = acc
            for j in range(1, n):
                acc = acc * x[i, j]
                out[i, j] = acc
    return out


@_jit.njit(cache=True, nogil=True)
def _cumprod_vjp_kernel(x, g):
    # d/dx_i of sum_j g_j y_j is y_{i-1} S_i, S_i = g_i + x_{i+1} S_{i+1}: no division.
    rows, n = x.shape
    out = _onp.empty((rows, n), x.dtype)
    for i in range(rows):
        s = 0.0 * x[i, 0] if n else 0.0
        for j in range(n - 1, -1, -1):
            s = g[i, j] + (x[i, j + 1] * s if j + 1 < n else 0.0 * s)
            out[i, j] = s
        acc = 1.0
        for j in range(n):
            out[i, j] *= acc
            acc = acc * x[i, j]
    return out


def _cumprod_vjp_numpy(x, g):
    out = _onp.zeros(_onp.broadcast_shapes(x.shape, g.shape), _onp.result_type(x, g))
    rows, n = x.shape
    for i in range(n):
        x_i = x.copy()
        x_i[:, i] = 1.0
        jac = _onp.cumprod(x_i, axis=1)
        jac[:, :i] = 0.0
        out[:, i] = _onp.sum(g * jac, axis=1)
    return out


@_jit.njit(cache=True, nogil=True)
def _cumprod_jvp_kernel(x, t):
    # d y_k = sum_{j<=k} t_j prod_{i<=k, i!=j} x_i: S_k = S_{k-1} x_k + P_{k-1} t_k with
    # P_k = x_0 ... x_k, so no division (zeros are fine).
    rows, n = x.shape
    out = _onp.zeros((rows, n), x.dtype) + _onp.zeros((rows, n), t.dtype)
    for i in range(rows):
        p = 1.0 + 0.0 * x[i, 0] if n else 1.0
        s = 0.0 * p
        for j in range(n):
            s = s * x[i, j] + p * t[i, j]
            p = p * x[i, j]
            out[i, j] = s
    return out


def _cumprod_jvp_numpy(x, t):
    out = _onp.zeros(x.shape, _onp.result_type(x, t))
    for j in range(x.shape[1]):
        x_j = x.copy()
        x_j[:, j] = t[:, j]  # the product with x_j replaced by its tangent
        partial = _onp.cumprod(x_j, axis=1)
        partial[:, :j] = 0.0
        out += partial
    return out


_cumsum_rows = call_op(
    "cumsum_rows", numpy=lambda x: _onp.cumsum(x, axis=1), kernel=_cumsum_rows_kernel,
    shape=lambda x: [(x.shape, x.dtype)],
    vjp=(lambda g, ans, x: apply(_cumsum_rows, g[:, ::-1])[:, ::-1],))
# The VJP and the JVP of cumprod are linear in their second operand and each other's transpose
# there (forward mode transposes cumprod's VJP); with respect to x neither is differentiable.
_cumprod_vjp = call_op(
    "cumprod_vjp", numpy=_cumprod_vjp_numpy, kernel=_cumprod_vjp_kernel,
    shape=lambda x, g: [(x.shape, x.dtype)],
    vjp=(not_differentiable("np.cumprod's gradient", "argument"),
         lambda h, ans, x, g: apply(_cumprod_jvp, x, h)))
_cumprod_jvp = call_op(
    "cumprod_jvp", numpy=_cumprod_jvp_numpy, kernel=_cumprod_jvp_kernel,
    shape=lambda x, t: [(x.shape, _onp.result_type(x.dtype, t.dtype))],
    vjp=(not_differentiable("np.cumprod's derivative", "argument"),
         lambda h, ans, x, t: apply(_cumprod_vjp, x, h)))
_cumprod_rows = call_op(
    "cumprod_rows", numpy=lambda x: _onp.cumprod(x, axis=1), kernel=_cumprod_rows_kernel,
    shape=lambda x: [(x.shape, x.dtype)],
    vjp=(lambda g, ans, x: apply(_cumprod_vjp, x, g),))


def _scan(name, op, a, axis, dtype):
    if dtype is not None:
        a = a.astype(dtype)
    elif a.dtype.kind in "biu":
        a = _accumulator_dtype(a)
    if axis is None:
        a, axis = jnp.reshape(a, (a.size,)), 0
    if a.ndim == 0:
        raise ShapeError(f"np.{name}: axis {axis} is out of bounds for a 0-d array "
                         f"(at {user_frame()})")
    (axis,) = _axes(axis, a.ndim, f"np.{name}")
    keep = tuple(d for d in range(a.ndim) if d != axis)
    rows = apply(op, _to_rows(a, (axis,)))
    moved = jnp.reshape(rows, tuple(a.shape[d] for d in keep) + (a.shape[axis],))
    return jnp.transpose(moved, tuple(_onp.argsort(keep + (axis,))))


@export("numpy")
def cumsum(a, axis=None, dtype=None, out=None):
    """numpy.cumsum with `axis` (None flattens) and `dtype`."""
    if not isinstance(a, Tracer):
        return _onp.cumsum(a, axis=axis, dtype=dtype, out=out)
    _no_unsupported("cumsum", ["out"] if out is not None else [])
    return _scan("cumsum", _cumsum_rows, a, axis, dtype)


@export("numpy")
def cumprod(a, axis=None, dtype=None, out=None):
    """numpy.cumprod with `axis` (None flattens) and `dtype`.  The gradient is exact at zeros;
    a second derivative is not supported."""
    if not isinstance(a, Tracer):
        return _onp.cumprod(a, axis=axis, dtype=dtype, out=out)
    _no_unsupported("cumprod", ["out"] if out is not None else [])
    return _scan("cumprod", _cumprod_rows, a, axis, dtype)


# ------------------------------------------------------------------------------------------------
# argmax, argmin: integer results, zero gradients
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _argmax_rows_kernel(x):
    out = _onp.zeros(x.shape[0], _onp.int64)
    for i in range(x.shape[0]):
        best = x[i, 0]
        for j in range(1, x.shape[1]):
            if best != best:  # the first NaN wins, as in NumPy
                break
            v = x[i, j]
            if v > best or v != v:
                best, out[i] = v, j
    return out


@_jit.njit(cache=True, nogil=True)
def _argmin_rows_kernel(x):
    out = _onp.zeros(x.shape[0], _onp.int64)
    for i in range(x.shape[0]):
        best = x[i, 0]
        for j in range(1, x.shape[1]):
            if best != best:
                break
            v = x[i, j]
            if v < best or v != v:
                best, out[i] = v, j
    return out


_argmax_rows = call_op("argmax_rows", numpy=lambda x: _onp.argmax(x, axis=1),
                       kernel=_argmax_rows_kernel, shape=lambda x: [((x.shape[0],), _INT64)],
                       vjp=None)
_argmin_rows = call_op("argmin_rows", numpy=lambda x: _onp.argmin(x, axis=1),
                       kernel=_argmin_rows_kernel, shape=lambda x: [((x.shape[0],), _INT64)],
                       vjp=None)


def _arg(name, op, a, axis, out, keepdims):
    if not isinstance(a, Tracer):
        return getattr(_onp, name)(a, axis=axis, out=out, keepdims=keepdims)
    _no_unsupported(name, ["out"] if out is not None else [])
    if a.dtype.kind == "c":
        raise TracingError(f"np.{name}: complex arguments are not supported (at {user_frame()})")
    if axis is None:
        flat = jnp.reshape(a, (1, a.size))
        if a.size == 0:
            raise ShapeError(f"np.{name}: attempt to get {name} of an empty sequence "
                             f"(at {user_frame()})")
        result = jnp.reshape(apply(op, flat), (1,) * a.ndim if keepdims else ())
        return result
    if a.ndim == 0:
        raise ShapeError(f"np.{name}: axis {axis} is out of bounds for a 0-d array")
    axes = _axes(axis, a.ndim, f"np.{name}")
    if len(axes) != 1 or isinstance(axis, tuple):
        raise TracingError(f"np.{name}: axis must be an int or None, not {axis!r}")
    if a.shape[axes[0]] == 0:
        raise ShapeError(f"np.{name}: attempt to get {name} of an empty sequence "
                         f"(at {user_frame()})")
    result = apply(op, _to_rows(a, axes))
    return jnp.reshape(result, _reduced(a.shape, axes, keepdims))


@export("numpy")
def argmax(a, axis=None, out=None, *, keepdims=False):
    """numpy.argmax with `axis` and `keepdims` (int64 results; the first NaN wins)."""
    return _arg("argmax", _argmax_rows, a, axis, out, keepdims)


@export("numpy")
def argmin(a, axis=None, out=None, *, keepdims=False):
    """numpy.argmin with `axis` and `keepdims` (int64 results; the first NaN wins)."""
    return _arg("argmin", _argmin_rows, a, axis, out, keepdims)


# ------------------------------------------------------------------------------------------------
# all, any, count_nonzero: boolean and integer results, zero gradients
# ------------------------------------------------------------------------------------------------


@export("numpy")
def all(a, axis=None, out=None, keepdims=False, **unsupported):  # noqa: A001
    """numpy.all with `axis` and `keepdims`."""
    if not isinstance(a, Tracer):
        return _onp.all(a, axis=axis, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("all", list(unsupported) + (["out"] if out is not None else []))
    return jnp.equal(jnp.sum(jnp.equal(a, 0), axis=axis, keepdims=keepdims), 0)


@export("numpy")
def any(a, axis=None, out=None, keepdims=False, **unsupported):  # noqa: A001
    """numpy.any with `axis` and `keepdims`."""
    if not isinstance(a, Tracer):
        return _onp.any(a, axis=axis, out=out, keepdims=keepdims, **unsupported)
    _no_unsupported("any", list(unsupported) + (["out"] if out is not None else []))
    return jnp.greater(jnp.sum(jnp.not_equal(a, 0), axis=axis, keepdims=keepdims), 0)


@export("numpy")
def count_nonzero(a, axis=None, *, keepdims=False):
    """numpy.count_nonzero with `axis` and `keepdims` (int64 results)."""
    if not isinstance(a, Tracer):
        return _onp.count_nonzero(a, axis=axis, keepdims=keepdims)
    return jnp.sum(jnp.not_equal(a, 0), axis=axis, keepdims=keepdims)
