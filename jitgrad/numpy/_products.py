"""Products: matmul and dot of any rank, einsum, tensordot, inner, outer, kron, cross, vdot; and
the diagonal family (trace, diag, diagonal, tril, triu).

Everything is a composition of the core primitives except one op, `batched_matmul`: a stack of
2-D products, (B, n, k) @ (B, k, m), a Numba loop calling BLAS per matrix.  A product whose
batch is one matrix (or that one operand does not batch) is a single 2-D product (`Prim.matmul`,
BLAS), reshaped.  `einsum` contracts its operands pairwise, each contraction lowered to a
product, or to a broadcasting multiply and a sum (which fuses with the work around it) when the
contracted dimension is small; its gradient comes from the pieces.
"""

from __future__ import annotations

import string

import numpy as _onp

from .. import _jit
from ..errors import ShapeError, TracingError
from ..ir import Span
from ..ops import apply, call_op, export
from ..primitives import Prim
from ..trace import Tracer, bind, full, user_frame
from ._base import _matmul, _shape, broadcast_to, multiply, reshape, sum, transpose, where


def _export(fn, *names):
    return export("numpy", *names)(fn)


def _traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


def _prod(shape) -> int:
    return int(_onp.prod(shape, dtype=_onp.int64))


def _dtype(x):
    return x.dtype if isinstance(x, Tracer) else _onp.result_type(x)


def _swap(x):
    """The last two axes swapped."""
    nd = len(_shape(x))
    return transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _cast(x, dtype):
    if isinstance(x, Tracer):
        return x if x.dtype == dtype else x.astype(dtype)
    return _onp.asarray(x, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# The batched product op
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _dot_dense_b(a, b, out):
    """out = a @ b, `a` dense; `b` (any strides) copied dense in the order that reads its memory
    row by row, C-ordered or F-ordered (BLAS takes either)."""
    if b.strides[1] <= b.strides[0]:
        _onp.dot(a, _onp.ascontiguousarray(b), out)
    else:
        _onp.dot(a, _onp.ascontiguousarray(b.T).T, out)


@_jit.njit(cache=True, nogil=True)
def _dot_any(a, b, out):
    """out = a @ b for 2-D operands of any strides (slices of transposed stacks)."""
    if a.strides[1] <= a.strides[0]:
        _dot_dense_b(_onp.ascontiguousarray(a), b, out)
    else:
        _dot_dense_b(_onp.ascontiguousarray(a.T).T, b, out)


@_jit.njit(cache=True, nogil=True)
def _batched_matmul_kernel(a, b, ta, tb):
    n = a.shape[2] if ta else a.shape[1]
    m = b.shape[1] if tb else b.shape[2]
    if a.shape[1] == 0 or a.shape[2] == 0 or n == 0 or m == 0:
        return _onp.zeros((a.shape[0], n, m), a.dtype)
    out = _onp.empty((a.shape[0], n, m), a.dtype)  # every element written by a product below
    if a.flags.c_contiguous and b.flags.c_contiguous:
        _contiguous_products(_onp.ascontiguousarray(a), _onp.ascontiguousarray(b), ta, tb, out)
        return out
    # A stack that is a transposed view (einsum's operands) is strided along its last axis: a
    # copy of the whole stack in C order would read one element per cache line.  Each matrix is
    # copied dense on its own instead, reading memory in the order it lies in.
    for i in range(a.shape[0]):
        _dot_any(a[i].T if ta else a[i], b[i].T if tb else b[i], out[i])
    return out


@_jit.njit(cache=True, nogil=True)
def _contiguous_products(a, b, ta, tb, out):
    for i in range(a.shape[0]):  # the transposes are F-ordered views: BLAS reads them as such
        if ta and tb:
            _onp.dot(a[i].T, b[i].T, out[i])
        elif ta:
            _onp.dot(a[i].T, b[i], out[i])
        elif tb:
            _onp.dot(a[i], b[i].T, out[i])
        else:
            _onp.dot(a[i], b[i], out[i])


def _bmm_numpy(a, b, ta, tb):
    a = _swap(a) if ta else a
    b = _swap(b) if tb else b
    return _onp.ascontiguousarray(_onp.matmul(a, b))


def _bmm_shape(a, b, ta, tb):
    n = a.shape[2] if ta else a.shape[1]
    m = b.shape[1] if tb else b.shape[2]
    return [((a.shape[0], n, m), _onp.result_type(a.dtype, b.dtype))]


def _bmm(a, b, ta=False, tb=False):
    """(B, n, k) @ (B, k, m), either operand given transposed (`ta`, `tb`: (B, k, n), (B, m, k)),
    cast to their common float dtype."""
    dt = _onp.result_type(_dtype(a), _dtype(b))
    work = dt if dt.kind in "fc" else _onp.dtype(_onp.float64)
    out = apply(batched_matmul, _cast(a, work), _cast(b, work), ta=bool(ta), tb=bool(tb))
    return out if work == dt else _cast(out, dt)


def _bmm_vjp_a(g, ans, a, b, ta, tb):
    # a op(a) = g op(b)^T; a transposed operand's cotangent is that transposed.
    return _bmm(b, g, ta=tb, tb=True) if ta else _bmm(g, b, tb=not tb)


def _bmm_vjp_b(g, ans, a, b, ta, tb):
    return _bmm(g, a, ta=True, tb=ta) if tb else _bmm(a, g, ta=not ta)


batched_matmul = call_op(
    "batched_matmul", numpy=_bmm_numpy, kernel=_batched_matmul_kernel, shape=_bmm_shape,
    static=("ta", "tb"), vjp=(_bmm_vjp_a, _bmm_vjp_b),
    doc="A stack of matrix products: op(a) @ op(b), op a transpose of the last two axes or not.")


def _mm(a, b, name: str):
    """The core 2-D product (BLAS), of integer operands too (computed in float64: BLAS has no
    integer product)."""
    dt = _onp.result_type(_dtype(a), _dtype(b))
    if dt.kind in "fc":
        return _matmul(a, b, name)
    f64 = _onp.dtype(_onp.float64)
    return _cast(_matmul(_cast(a, f64), _cast(b, f64), name), dt)


def _matmul_nd(a, b, name: str):
    """numpy.matmul of operands of at least 2 dimensions (1-D ones are promoted by the caller)."""
    sa, sb = _shape(a), _shape(b)
    n, k = sa[-2:]
    k2, m = sb[-2:]
    if k != k2:
        raise ShapeError(f"np.{name}: operands with shapes {sa} and {sb} are not aligned: {k} "
                         f"(dim {len(sa) - 1} of the first) != {k2} (dim {len(sb) - 2} of the "
                         f"second) (at {user_frame()})")
    try:
        batch = tuple(_onp.broadcast_shapes(sa[:-2], sb[:-2]))
    except ValueError:
        raise ShapeError(f"np.{name}: the batch dimensions of operands with shapes {sa} and "
                         f"{sb} do not broadcast (at {user_frame()})") from None
    if len(sa) == 2 and len(sb) == 2:
        return _mm(a, b, name)
    if _prod(sb[:-2]) == 1:
        # One matrix on the right: a single 2-D product of the stacked rows of `a`.
        a2 = reshape(broadcast_to(a, batch + (n, k)) if len(sa) - 2 < len(batch) else a,
                     (_prod(batch) * n, k))
        out = _mm(a2, reshape(b, (k, m)), name)
        return reshape(out, batch + (n, m))
    if _prod(sa[:-2]) == 1:
        # One matrix on the left: a @ [b_1 ... b_B] as one product with the columns side by side.
        bb = broadcast_to(b, batch + (k, m))
        nb = len(batch)
        cols = reshape(transpose(bb, (nb,) + tuple(range(nb)) + (nb + 1,)), (k, _prod(batch) * m))
        out = reshape(_mm(reshape(a, (n, k)), cols, name), (n,) + batch + (m,))
        return transpose(out, tuple(range(1, nb + 1)) + (0, nb + 1))
    a3 = reshape(broadcast_to(a, batch + (n, k)), (_prod(batch), n, k))
    b3 = reshape(broadcast_to(b, batch + (k, m)), (_prod(batch), k, m))
    return reshape(_bmm(a3, b3), batch + (n, m))


@_export
def matmul(a, b):
    """numpy.matmul / `@` of any rank: a stack of products, broadcast over leading dims."""
    if not _traced(a, b):
        return _onp.matmul(a, b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        raise ShapeError(f"np.matmul: scalar operands are not allowed, use * instead "
                         f"(at {user_frame()})")
    if len(sa) <= 2 and len(sb) <= 2:
        if sa[-1] != sb[0]:
            raise ShapeError(f"np.matmul: operands with shapes {sa} and {sb} are not aligned: "
                             f"{sa[-1]} (dim {len(sa) - 1} of the first) != {sb[0]} (dim 0 of "
                             f"the second) (at {user_frame()})")
        return _mm(a, b, "matmul")
    if len(sa) == 1:
        return reshape(_matmul_nd(reshape(a, (1,) + sa), b, "matmul"),
                       _onp.broadcast_shapes(sb[:-2]) + sb[-1:])
    if len(sb) == 1:
        out = _matmul_nd(a, reshape(b, sb + (1,)), "matmul")
        return reshape(out, _shape(out)[:-1])
    return _matmul_nd(a, b, "matmul")


@_export
def dot(a, b):
    """numpy.dot of any rank: a scalar product, a matrix product, or a sum over the last axis of
    `a` and the second-to-last of `b`."""
    if not _traced(a, b):
        return _onp.dot(a, b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        if sa[-1] != sb[0]:
            raise ShapeError(f"np.dot: shapes {sa} and {sb} are not aligned: {sa[-1]} (dim "
                             f"{len(sa) - 1}) != {sb[0]} (dim 0) (at {user_frame()})")
        return _mm(a, b, "dot")
    axis_b = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[axis_b]:
        raise ShapeError(f"np.dot: shapes {sa} and {sb} are not aligned: {sa[-1]} (dim "
                         f"{len(sa) - 1}) != {sb[axis_b]} (dim {axis_b}) (at {user_frame()})")
    return _tensordot(a, b, [len(sa) - 1], [axis_b], "dot")


def _tensordot(a, b, axes_a, axes_b, name):
    sa, sb = _shape(a), _shape(b)
    free_a = [d for d in range(len(sa)) if d not in axes_a]
    free_b = [d for d in range(len(sb)) if d not in axes_b]
    shape_a = tuple(sa[d] for d in free_a)
    shape_b = tuple(sb[d] for d in free_b)
    k = _prod([sa[d] for d in axes_a])
    if not axes_a:  # an outer product
        return multiply(reshape(a, sa + (1,) * len(sb)), reshape(b, (1,) * len(sa) + sb))
    a2 = reshape(transpose(a, free_a + list(axes_a)), (_prod(shape_a), k))
    b2 = reshape(transpose(b, list(axes_b) + free_b), (k, _prod(shape_b)))
    return reshape(_mm(a2, b2, name), shape_a + shape_b)


def _axis_list(ax, ndim, name):
    ax = [ax] if isinstance(ax, (int, _onp.integer)) else list(ax)
    out = []
    for d in ax:
        if not -ndim <= d < ndim:
            raise ShapeError(f"{name}: axis {d} is out of bounds for an array of dimension "
                             f"{ndim} (at {user_frame()})")
        out.append(int(d) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{name}: repeated axis in {ax} (at {user_frame()})")
    return out


@_export
def tensordot(a, b, axes=2):
    """numpy.tensordot: `axes` an int (the last axes of `a` with the first of `b`) or a pair
    of axis lists."""
    if not _traced(a, b):
        return _onp.tensordot(a, b, axes)
    sa, sb = _shape(a), _shape(b)
    if isinstance(axes, (int, _onp.integer)):
        if axes < 0 or axes > len(sa) or axes > len(sb):
            raise ShapeError(f"np.tensordot: axes={axes} for operands with shapes {sa} and {sb} "
                             f"(at {user_frame()})")
        axes_a = list(range(len(sa) - axes, len(sa)))
        axes_b = list(range(axes))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise TracingError(f"np.tensordot: axes must be an int or a pair of axis lists, not "
                               f"{axes!r}") from None
        axes_a = _axis_list(ax_a, len(sa), "np.tensordot")
        axes_b = _axis_list(ax_b, len(sb), "np.tensordot")
    if len(axes_a) != len(axes_b) or any(sa[i] != sb[j] for i, j in zip(axes_a, axes_b)):
        raise ShapeError(f"np.tensordot: shape-mismatch for sum: shapes {sa} and {sb} over axes "
                         f"{axes_a} and {axes_b} (at {user_frame()})")
    return _tensordot(a, b, axes_a, axes_b, "tensordot")


@_export
def inner(a, b):
    """numpy.inner: a sum over the last axes of `a` and `b`."""
    if not _traced(a, b):
        return _onp.inner(a, b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ShapeError(f"np.inner: the last dimensions of shapes {sa} and {sb} differ "
                         f"(at {user_frame()})")
    return _tensordot(a, b, [len(sa) - 1], [len(sb) - 1], "inner")


@_export
def outer(a, b):
    """numpy.outer of the flattened operands."""
    if not _traced(a, b):
        return _onp.outer(a, b)
    return multiply(reshape(a, (-1, 1) if _prod(_shape(a)) else (0, 1)),
                    reshape(b, (1, -1) if _prod(_shape(b)) else (1, 0)))


@_export
def vdot(a, b):
    """numpy.vdot: the sum of conj(a) * b over the flattened operands."""
    if not _traced(a, b):
        return _onp.vdot(a, b)
    if _prod(_shape(a)) != _prod(_shape(b)):
        raise ShapeError(f"np.vdot: operands of shapes {_shape(a)} and {_shape(b)} have "
                         f"different sizes (at {user_frame()})")
    from ._base import conj

    return sum(multiply(reshape(conj(a), (-1,)), reshape(b, (-1,))))


@_export
def kron(a, b):
    """numpy.kron: the Kronecker product (operands of different ranks padded with leading 1s)."""
    if not _traced(a, b):
        return _onp.kron(a, b)
    sa, sb = _shape(a), _shape(b)
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
    a2 = reshape(a, tuple(x for n in sa for x in (n, 1)))
    b2 = reshape(b, tuple(x for n in sb for x in (1, n)))
    return reshape(multiply(a2, b2), tuple(p * q for p, q in zip(sa, sb)))


def _move_last(x, axis, name):
    nd = len(_shape(x))
    (axis,) = _axis_list(axis, nd, name)
    return transpose(x, [d for d in range(nd) if d != axis] + [axis])


@_export
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """numpy.cross of 2- and 3-vectors along `axisa`/`axisb` (or `axis`), broadcast."""
    if not _traced(a, b):
        return _onp.cross(a, b, axisa, axisb, axisc, axis)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _move_last(a, axisa, "np.cross"), _move_last(b, axisb, "np.cross")
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ShapeError(f"np.cross: incompatible dimensions for cross product (dimension must "
                         f"be 2 or 3), got {na} and {nb} (at {user_frame()})")
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    x = a1 * b2 - a2 * b1
    y = a2 * b0 - a0 * b2
    parts = [reshape(c, _shape(c) + (1,)) * e for c, e in
             zip((x, y, z), _onp.eye(3))]
    out = parts[0] + parts[1] + parts[2]
    nd = len(_shape(out))
    (axisc,) = _axis_list(axisc, nd, "np.cross")
    perm = list(range(nd - 1))
    perm.insert(axisc, nd - 1)
    return transpose(out, perm)


# ------------------------------------------------------------------------------------------------
# Diagonals and triangles
# ------------------------------------------------------------------------------------------------


@_export
def diagonal(a, offset=0, axis1=0, axis2=1):
    """numpy.diagonal: the diagonal (with `offset`) of the `axis1`, `axis2` planes, as the last
    axis."""
    if not _traced(a):
        return _onp.diagonal(a, offset, axis1, axis2)
    nd = a.ndim
    if nd < 2:
        raise ShapeError(f"np.diagonal: the array of shape {a.shape} needs at least 2 "
                         f"dimensions (at {user_frame()})")
    ax1, ax2 = _axis_list(axis1, nd, "np.diagonal")[0], _axis_list(axis2, nd, "np.diagonal")[0]
    if ax1 == ax2:
        raise ShapeError(f"np.diagonal: axis1 and axis2 cannot be the same ({axis1}) "
                         f"(at {user_frame()})")
    x = transpose(a, [d for d in range(nd) if d not in (ax1, ax2)] + [ax1, ax2])
    lead, (n, m) = x.shape[:-2], x.shape[-2:]
    offset = int(offset)
    if offset >= 0:
        start, count = offset, max(0, min(n, m - offset))
    else:
        start, count = -offset * m, max(0, min(n + offset, m))
    flat = reshape(x, lead + (n * m,))
    if count == 0:
        return flat[..., 0:0]
    return flat[..., start:start + (count - 1) * (m + 1) + 1:m + 1]


@_export
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """numpy.trace: the sum of a diagonal (`offset`, `axis1`, `axis2`)."""
    if not _traced(a):
        return _onp.trace(a, offset, axis1, axis2, dtype, out)
    if out is not None:
        raise TracingError("np.trace: out= is not supported on traced values")
    d = diagonal(a, offset, axis1, axis2)
    s = sum(d, axis=-1)
    return s if dtype is None else _cast(s, _onp.dtype(dtype))


def _diag_matrix(v, k: int):
    (n,) = v.shape
    size = n + abs(k)
    start = k if k >= 0 else -k * size
    base = full((size * size,), 0.0, v.dtype)
    flat = bind(Prim.add_into, base, v, index=(Span(start, size + 1, n),))
    return reshape(flat, (size, size))


@_export
def diag(v, k=0):
    """numpy.diag: a vector's diagonal matrix, or a matrix's (k-th) diagonal."""
    if not _traced(v):
        return _onp.diag(v, k)
    if v.ndim == 1:
        return _diag_matrix(v, int(k))
    if v.ndim == 2:
        return diagonal(v, k)
    raise ShapeError(f"np.diag: input must be 1-d or 2-d, got shape {v.shape} "
                     f"(at {user_frame()})")


@_export
def diagflat(v, k=0):
    """numpy.diagflat: the diagonal matrix of the flattened input."""
    if not _traced(v):
        return _onp.diagflat(v, k)
    return _diag_matrix(reshape(v, (-1,)), int(k))


def _triangle(m, k, lower: bool, name: str):
    if not _traced(m):
        return (_onp.tril if lower else _onp.triu)(m, k)
    if m.ndim == 0:
        raise ShapeError(f"np.{name}: a 0-d array has no triangle (at {user_frame()})")
    if m.ndim == 1:  # as NumPy: the vector is broadcast to a square matrix first
        m = broadcast_to(m, (m.shape[0], m.shape[0]))
    n, c = m.shape[-2:]
    mask = _onp.tri(n, c, k, dtype=bool) if lower else ~_onp.tri(n, c, k - 1, dtype=bool)
    return where(mask, m, _onp.zeros((), m.dtype))


@_export
def tril(m, k=0):
    """numpy.tril: the lower triangle (below the k-th diagonal) of the last two axes."""
    return _triangle(m, int(k), True, "tril")


@_export
def triu(m, k=0):
    """numpy.triu: the upper triangle (above the k-th diagonal) of the last two axes."""
    return _triangle(m, int(k), False, "triu")


# ------------------------------------------------------------------------------------------------
# einsum
# ------------------------------------------------------------------------------------------------

# A contraction over fewer elements than this per result element is a broadcasting multiply and a
# sum (fused into the loops around it); a larger one is a BLAS product.
_SMALL_CONTRACTION = 8


def _einsum_terms(subscripts, shapes):
    """The letters of each operand and of the output, with '...' replaced by fresh letters."""
    if not isinstance(subscripts, str):
        raise TracingError(f"np.einsum: subscripts must be a string, not {subscripts!r}")
    spec = subscripts.replace(" ", "")
    explicit = "->" in spec
    ins, out = spec.split("->") if explicit else (spec, None)
    terms = ins.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"np.einsum: {len(terms)} operand subscripts in {subscripts!r} for "
                         f"{len(shapes)} operands (at {user_frame()})")
    used = set(spec) - set(".,->")
    bad = [c for c in used if c not in string.ascii_letters]
    if bad:
        raise TracingError(f"np.einsum: invalid subscript {bad[0]!r} in {subscripts!r}")
    spare = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n_ell = max(n_ell, len(shape) - (len(term) - 3))
    ell = "".join(spare[:n_ell])
    letters = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            k = len(shape) - (len(term) - 3)
            if k < 0:
                raise ShapeError(f"np.einsum: operand subscripts {term!r} name more dimensions "
                                 f"than the operand's shape {shape} has (at {user_frame()})")
            term = term.replace("...", ell[n_ell - k:])
        if "." in term or len(term) != len(shape):
            raise ShapeError(f"np.einsum: subscripts {term!r} do not match an operand of shape "
                             f"{shape} (at {user_frame()})")
        letters.append(term)
    if out is None:
        counts = {}
        for t in letters:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
        if "." in out or len(set(out)) != len(out):
            raise TracingError(f"np.einsum: invalid output subscripts in {subscripts!r}")
        missing = [c for c in out if not any(c in t for t in letters)]
        if missing:
            raise ShapeError(f"np.einsum: output subscript {missing[0]!r} never appears in an "
                             f"input of {subscripts!r} (at {user_frame()})")
    return letters, out


def _sum_letters(x, lx, drop):
    axes = tuple(i for i, c in enumerate(lx) if c in drop)
    if not axes:
        return x, lx
    return sum(x, axis=axes), "".join(c for c in lx if c not in drop)


def _take_diagonals(x, lx):
    """Repeated letters of one operand: its diagonal along them."""
    while len(set(lx)) != len(lx):
        c = next(c for c in lx if lx.count(c) > 1)
        i = lx.index(c)
        j = lx.index(c, i + 1)
        x = diagonal(x, 0, i, j)
        lx = "".join(ch for d, ch in enumerate(lx) if d not in (i, j)) + c
    return x, lx


def _arrange(x, lx, order):
    """`x` (letters `lx`) transposed to the letters of `order` (a subsequence of it) and
    reshaped with unit axes where `order` has letters `x` lacks."""
    have = [c for c in order if c in lx]
    x = transpose(x, [lx.index(c) for c in have])
    shape = _shape(x)
    it = iter(shape)
    return reshape(x, tuple(next(it) if c in lx else 1 for c in order))


def _contract(a, la, b, lb, keep, sizes, want=""):
    """The einsum of two operands, keeping the letters in `keep`: (result, its letters).
    `want`: the order the result is read in, if known (the einsum's output)."""
    fa = [c for c in la if c not in lb]
    fb = [c for c in lb if c not in la]
    last = [c for c in want if c in fa or c in fb][-1:]
    if fa and fb and last and last[0] in fa:
        # The product's rows come from `a` and its columns from `b`: with the output's innermost
        # letter among b's, the output is read along the product's rows, contiguously (einsum
        # "kij,nkj->nki" as x_k L_k^T, not L_k x_k^T read transposed).
        a, la, b, lb = b, lb, a, la
    batch = [c for c in la if c in lb and c in keep]
    contr = [c for c in la if c in lb and c not in keep]
    fa = [c for c in la if c not in lb]
    fb = [c for c in lb if c not in la]
    out_letters = "".join(batch + fa + fb)
    if not contr:
        return multiply(_arrange(a, la, out_letters), _arrange(b, lb, out_letters)), out_letters
    K = _prod([sizes[c] for c in contr])
    M, N = _prod([sizes[c] for c in fa]), _prod([sizes[c] for c in fb])
    if K < _SMALL_CONTRACTION or M * N == 1 or (batch and min(M, N) == 1):
        order = out_letters + "".join(contr)
        prod = multiply(_arrange(a, la, order), _arrange(b, lb, order))
        n = len(out_letters)
        return sum(prod, axis=tuple(range(n, n + len(contr)))), out_letters
    B = _prod([sizes[c] for c in batch])
    # Each operand is read as stored, or transposed (the product takes either) when that is its
    # order: a transpose that moves data is made only when neither is.
    ta = la == "".join(batch + contr + fa) and la != "".join(batch + fa + contr)
    tb = lb == "".join(batch + fb + contr) and lb != "".join(batch + contr + fb)
    a3 = _arrange(a, la, "".join(batch + (contr + fa if ta else fa + contr)))
    b3 = _arrange(b, lb, "".join(batch + (fb + contr if tb else contr + fb)))
    a3 = reshape(a3, (B, K, M) if ta else (B, M, K))
    b3 = reshape(b3, (B, N, K) if tb else (B, K, N))
    if B == 1:
        a2, b2 = reshape(a3, _shape(a3)[1:]), reshape(b3, _shape(b3)[1:])
        out = _mm(transpose(a2) if ta else a2, transpose(b2) if tb else b2, "einsum")
    else:
        out = _bmm(a3, b3, ta=ta, tb=tb)
    return reshape(out, tuple(sizes[c] for c in out_letters)), out_letters


@_export
def einsum(subscripts, *operands, optimize=False, dtype=None, **unsupported):
    """numpy.einsum with a subscripts string: implicit or explicit output, '...', repeated
    letters (diagonals, traces), any number of operands (contracted left to right).  The
    interleaved (operand, sublist) form and out= are not supported on traced values."""
    if not _traced(*operands):
        return _onp.einsum(subscripts, *operands, optimize=optimize, dtype=dtype, **unsupported)
    if unsupported:
        raise TracingError(f"np.einsum: arguments {sorted(unsupported)} are not supported on "
                           f"traced values")
    if not isinstance(subscripts, str):
        raise TracingError("np.einsum: the interleaved form einsum(op, sublist, ...) is not "
                           "supported on traced values; pass a subscripts string")
    shapes = [_shape(x) for x in operands]
    letters, out = _einsum_terms(subscripts, shapes)
    sizes: dict[str, int] = {}
    for lx, shape in zip(letters, shapes):
        for c, n in zip(lx, shape):
            if sizes.get(c, 1) != 1 and n != 1 and sizes[c] != n:
                raise ShapeError(f"np.einsum: subscript {c!r} has sizes {sizes[c]} and {n} in "
                                 f"operands of shapes {shapes} (at {user_frame()})")
            sizes[c] = max(sizes.get(c, 1), n)
    ops = []
    for x, lx in zip(operands, letters):
        # A broadcast (size-1) dimension is dropped: the operand is constant along it.
        kept = [(c, n) for c, n in zip(lx, _shape(x)) if not (n == 1 and sizes[c] != 1)]
        if len(kept) < len(lx):
            x, lx = reshape(x, tuple(n for c, n in kept)), "".join(c for c, n in kept)
        ops.append(list(_take_diagonals(x, lx)))
    for i, (x, lx) in enumerate(ops):
        needed = set(out).union(*(set(o[1]) for j, o in enumerate(ops) if j != i))
        ops[i] = list(_sum_letters(x, lx, set(lx) - needed))
    x, lx = ops[0]
    for i in range(1, len(ops)):
        b, lb = ops[i]
        keep = set(out).union(*(set(o[1]) for o in ops[i + 1:]))
        x, lx = _sum_letters(x, lx, set(lx) - keep - set(lb))
        b, lb = _sum_letters(b, lb, set(lb) - keep - set(lx))
        x, lx = _contract(x, lx, b, lb, keep, sizes, out if i == len(ops) - 1 else "")
    x, lx = _sum_letters(x, lx, set(lx) - set(out))
    x = _arrange(x, lx, out)
    x = broadcast_to(x, tuple(sizes[c] for c in out))
    if dtype is not None:
        x = _cast(x, _onp.dtype(dtype))
    return x

