"""`jitgrad.numpy.linalg`: NumPy's `numpy.linalg`, traced where `SUPPORTED` says; every other name
is NumPy's own (it works on plain arrays and raises a clear error on traced ones).

The factorisations and solves are ops whose kernels loop over a stack of matrices, (B, n, n),
calling Numba's `np.linalg` (LAPACK) on each: the functions reshape stacked inputs to one batch
axis and back.  Their VJPs are autograd's (the same formulas, the same conventions for stacks),
written with jitgrad.numpy, so they compile and can be differentiated again.  `norm`,
`matrix_power` and `multi_dot` are compositions.  A singular matrix raises NumPy's LinAlgError,
from NumPy (interpreted) or from LAPACK in the kernel (compiled).
"""

import numpy as _onp
import numpy.linalg as _np_linalg

from .. import _jit
from .._jit import NUMBA as numba
from ..errors import ShapeError, TracingError
from ..ops import REGISTRY as _REGISTRY
from ..ops import apply, call_op, export
from ..primitives import Prim
from ..trace import Tracer, user_frame
from . import _base as jnp
from . import _products as _p
from ._fallback import module_getattr as _module_getattr

SUPPORTED: dict = _REGISTRY.setdefault("numpy.linalg", {})


def _export(fn, *names):
    return export("numpy.linalg", *names)(fn)


_swap = _p._swap
_bmm = _p._bmm


def _stack(a, name: str, square=True):
    """`a` as a float stack (B, n, m) and the batch shape, with clear errors."""
    shape = jnp._shape(a)
    if len(shape) < 2:
        raise ShapeError(f"np.linalg.{name}: {len(shape)}-dimensional array given; the array "
                         f"must be at least two-dimensional (at {user_frame()})")
    if square and shape[-1] != shape[-2]:
        raise ShapeError(f"np.linalg.{name}: the last two dimensions of an array of shape "
                         f"{shape} must be square (at {user_frame()})")
    dt = a.dtype
    if dt.kind not in "fc":
        a = a.astype(_onp.float64)
    batch = shape[:-2]
    return jnp.reshape(a, (_p._prod(batch),) + shape[-2:]), batch


def _unstack(x, batch):
    return jnp.reshape(x, batch + jnp._shape(x)[1:])


def _is_zero(g) -> bool:
    """Whether cotangent `g` is known to be zero: the fill the reverse pass gives a result that
    nothing reads (autograd skips the eigenvector and singular vector terms then, which are
    infinite for repeated values)."""
    if not isinstance(g, Tracer):
        return not _onp.any(g)
    for stmt in reversed(g._trace.stmts):
        if g._var in stmt.outs:
            return stmt.prim is Prim.full and stmt.params["value"] == 0
    return False


def _real_dtype(dt) -> _onp.dtype:
    """The real dtype of dtype `dt`'s precision (float64 for complex128)."""
    return _onp.finfo(dt).dtype


def _eye(n, dtype=_onp.float64):
    return _onp.eye(n, dtype=dtype)


def _col(x):
    """(B, n) -> (B, n, 1) for broadcasting against (B, n, n)."""
    return jnp.reshape(x, jnp._shape(x) + (1,))


def _row(x):
    s = jnp._shape(x)
    return jnp.reshape(x, s[:-1] + (1, s[-1]))


# ------------------------------------------------------------------------------------------------
# The ops: kernels over (B, n, n) stacks
# ------------------------------------------------------------------------------------------------


@_jit.njit(cache=True, nogil=True)
def _inv_kernel(a):
    out = _onp.empty_like(a)
    for i in range(a.shape[0]):
        m = _onp.linalg.inv(a[i])
        for p in range(a.shape[1]):
            for q in range(a.shape[2]):
                out[i, p, q] = m[p, q]
    return out


inv_op = call_op(
    "inv", numpy=lambda a: _onp.ascontiguousarray(_np_linalg.inv(a)), kernel=_inv_kernel,
    shape=lambda a: [(a.shape, a.dtype)],
    vjp=(lambda g, ans, a: -_bmm(_bmm(ans, g, ta=True), ans, tb=True),))


@_jit.njit(cache=True, nogil=True)
def _det_kernel(a):
    out = _onp.empty(a.shape[0], a.dtype)
    for i in range(a.shape[0]):
        out[i] = _onp.linalg.det(a[i])
    return out


def _inv_t(a):
    return _swap(apply(inv_op, a))


det_op = call_op(
    "det", numpy=lambda a: _onp.ascontiguousarray(_np_linalg.det(a)), kernel=_det_kernel,
    shape=lambda a: [((a.shape[0],), a.dtype)],
    vjp=(lambda g, ans, a: _col(_col(g * ans)) * _inv_t(a),))


@_jit.njit(cache=True, nogil=True)
def _slogdet_kernel(a):
    sign = _onp.empty(a.shape[0], a.dtype)
    logdet = _onp.empty(a.shape[0], a.real.dtype)
    for i in range(a.shape[0]):
        s, ld = _onp.linalg.slogdet(a[i])
        sign[i] = s
        logdet[i] = ld
    return sign, logdet


def _slogdet_numpy(a):
    s, ld = _np_linalg.slogdet(a)
    return _onp.ascontiguousarray(s), _onp.ascontiguousarray(ld)


def _slogdet_vjp(g, ans, a):
    # d log det = tr(A^-1 dA) = d logabsdet + i d(arg det), and sign = exp(i arg det): the
    # cotangent of the complex log-determinant is g_logabsdet + i Im(g_sign * sign), which
    # multiplies A^-T.  autograd drops the sign's term, which is zero only for real matrices.
    g_sign, g_logdet = g
    if jnp._is_complex(a) and not _is_zero(g_sign):
        g_logdet = g_logdet + 1j * jnp.imag(g_sign * ans[0])
    return _col(_col(g_logdet)) * _inv_t(a)


slogdet_op = call_op(
    "slogdet", numpy=_slogdet_numpy, kernel=_slogdet_kernel,
    shape=lambda a: [((a.shape[0],), a.dtype), ((a.shape[0],), _real_dtype(a.dtype))],
    vjp=(_slogdet_vjp,))


@_jit.njit(cache=True, nogil=True)
def _solve_kernel(a, b, trans):
    out = _onp.empty_like(b)
    for i in range(a.shape[0]):
        m = _onp.linalg.solve(a[i].T if trans else a[i], b[i])
        for p in range(b.shape[1]):
            for q in range(b.shape[2]):
                out[i, p, q] = m[p, q]
    return out


def _solve_numpy(a, b, trans):
    return _onp.ascontiguousarray(_np_linalg.solve(_onp.swapaxes(a, 1, 2) if trans else a, b))


def _solve(a, b, trans=False):
    dt = _onp.result_type(_p._dtype(a), _p._dtype(b))
    return apply(solve_op, _p._cast(a, dt), _p._cast(b, dt), trans=bool(trans))


def _solve_vjp_a(g, ans, a, b, trans):
    gb = _solve(a, g, not trans)
    return -(_bmm(ans, gb, tb=True) if trans else _bmm(gb, ans, tb=True))


solve_op = call_op(
    "solve", numpy=_solve_numpy, kernel=_solve_kernel, static=("trans",),
    shape=lambda a, b, trans: [(b.shape, _onp.result_type(a.dtype, b.dtype))],
    vjp=(_solve_vjp_a, lambda g, ans, a, b, trans: _solve(a, g, not trans)))


@_jit.njit(cache=True, nogil=True)
def _solve_triangular_kernel(a, b, lower, trans, unit):
    # Forward or back substitution, column by column of b, on op(a) = a or a.T.
    n, k = b.shape[1], b.shape[2]
    out = _onp.empty_like(b)
    for i in range(a.shape[0]):
        for c in range(k):
            forward = lower != trans  # op(a) is lower triangular
            for s in range(n):
                r = s if forward else n - 1 - s
                acc = b[i, r, c]
                if forward:
                    for j in range(r):
                        acc -= (a[i, j, r] if trans else a[i, r, j]) * out[i, j, c]
                else:
                    for j in range(r + 1, n):
                        acc -= (a[i, j, r] if trans else a[i, r, j]) * out[i, j, c]
                if unit:
                    out[i, r, c] = acc
                else:
                    d = a[i, r, r]
                    if d == 0:
                        raise _onp.linalg.LinAlgError("solve_triangular: singular matrix: a "
                                                      "zero on the diagonal")
                    out[i, r, c] = acc / d
    return out


def _solve_triangular_numpy(a, b, lower, trans, unit):
    tri = _onp.tril(a, -1 if unit else 0) if lower else _onp.triu(a, 1 if unit else 0)
    if unit:
        tri = tri + _onp.eye(a.shape[-1], dtype=a.dtype)
    d = _onp.diagonal(tri, axis1=1, axis2=2)
    if _onp.any(d == 0):
        raise _np_linalg.LinAlgError("solve_triangular: singular matrix: a zero on the diagonal")
    return _onp.ascontiguousarray(_np_linalg.solve(_onp.swapaxes(tri, 1, 2) if trans else tri, b))


def solve_triangular(a, b, lower=False, trans=False, unit=False):
    """op(a) x = b for stacks (B, n, n) and (B, n, k), op(a) = a or a.T, `a`'s `lower` or upper
    triangle read (only), with unit diagonal if `unit`."""
    dt = _onp.result_type(_p._dtype(a), _p._dtype(b))
    return apply(solve_triangular_op, _p._cast(a, dt), _p._cast(b, dt), lower=bool(lower),
                 trans=bool(trans), unit=bool(unit))


def _solve_triangular_vjp_a(g, ans, a, b, lower, trans, unit):
    gb = solve_triangular(a, g, lower, not trans, unit)
    ga = -(_bmm(ans, gb, tb=True) if trans else _bmm(gb, ans, tb=True))
    k = (-1 if unit else 0) if lower else (1 if unit else 0)
    return _p.tril(ga, k) if lower else _p.triu(ga, k)


solve_triangular_op = call_op(
    "solve_triangular", numpy=_solve_triangular_numpy, kernel=_solve_triangular_kernel,
    static=("lower", "trans", "unit"),
    shape=lambda a, b, lower, trans, unit: [(b.shape, _onp.result_type(a.dtype, b.dtype))],
    vjp=(_solve_triangular_vjp_a,
         lambda g, ans, a, b, lower, trans, unit: solve_triangular(a, g, lower, not trans, unit)))


@_jit.njit(cache=True, nogil=True)
def _cholesky_kernel(a):
    out = _onp.empty_like(a)
    for i in range(a.shape[0]):
        m = _onp.linalg.cholesky(a[i])
        for p in range(a.shape[1]):
            for q in range(a.shape[2]):
                out[i, p, q] = m[p, q]
    return out


def _cholesky_vjp(g, L, a):
    # Iain Murray's formula (arXiv:1602.07527), as autograd: S = L^-T phi(L^T g) L^-1, the
    # gradient (S + S^T) / 2, with triangular solves.
    n = L.shape[-1]
    phi = _p.tril(_bmm(L, g, ta=True)) * (1.0 - 0.5 * _eye(n))
    y = solve_triangular(L, _swap(phi), lower=True, trans=True)  # L^-T phi^T
    s = solve_triangular(L, _swap(y), lower=True, trans=True)  # L^-T phi L^-1
    return 0.5 * (s + _swap(s))


cholesky_op = call_op(
    "cholesky", numpy=lambda a: _onp.ascontiguousarray(_np_linalg.cholesky(a)),
    kernel=_cholesky_kernel, shape=lambda a: [(a.shape, a.dtype)], vjp=(_cholesky_vjp,))


@_jit.njit(cache=True, nogil=True)
def _eigh_kernel(a):
    B, n = a.shape[0], a.shape[1]
    w = _onp.empty((B, n), a.real.dtype)
    v = _onp.empty_like(a)
    for i in range(B):
        wi, vi = _onp.linalg.eigh(a[i])
        for p in range(n):
            w[i, p] = wi[p]
            for q in range(n):
                v[i, p, q] = vi[p, q]
    return w, v


def _eigh_numpy(a):
    w, v = _np_linalg.eigh(a, "L")
    return _onp.ascontiguousarray(w), _onp.ascontiguousarray(v)


def _eigh_vjp(g, ans, a):
    # autograd's, for real symmetric and complex Hermitian matrices: only the lower triangle
    # of `a` is read, and the diagonal of a Hermitian matrix is real.
    wg, vg = g
    w, v = ans
    n = a.shape[-1]
    vc = jnp.conj(v)
    temp = _bmm(vc * _row(wg), v, tb=True)
    if not _is_zero(vg):
        off = 1.0 - _eye(n)
        # f[i, j] = 1 / (w_j - w_i) off the diagonal
        f = off / (_row(w) - _col(w) + _eye(n))
        temp = temp + _bmm(_bmm(vc, f * _bmm(v, vg, ta=True)), v, tb=True)
    return (jnp.real(temp) * _eye(n)
            + (temp + jnp.conj(_swap(temp))) * _onp.tril(_onp.ones((n, n)), -1))


eigh_op = call_op(
    "eigh", numpy=_eigh_numpy, kernel=_eigh_kernel,
    shape=lambda a: [((a.shape[0], a.shape[1]), _real_dtype(a.dtype)), (a.shape, a.dtype)],
    vjp=(_eigh_vjp,))


def _eig_numpy(a):
    """NumPy's eig of a stack, always complex: (B, n) eigenvalues and (B, n, n) eigenvectors
    (columns), in LAPACK's order."""
    w, v = _np_linalg.eig(a)
    return (_onp.ascontiguousarray(w, dtype=_onp.complex128),
            _onp.ascontiguousarray(v, dtype=_onp.complex128))


@_jit.njit(cache=True)
def _eig_kernel(a):
    # A call back into NumPy: Numba's eig refuses real matrices with complex eigenvalues, and
    # NumPy's (real LAPACK for real input) fixes the order and phases the interpreter gives.
    with numba.objmode(w="complex128[:, ::1]", v="complex128[:, :, ::1]"):
        w, v = _eig_numpy(a)
    return w, v


def _eig_vjp(g, ans, a):
    # autograd's (arXiv:1701.00392, eq. 4.77): with U the eigenvectors and F[i, j] =
    # 1 / (e_j - e_i) off the diagonal, the cotangent is U^-T (diag(ge) + F * (U^T gu)
    # - F * (U^T conj(U) (Re(U^T gu) * I))) U^T, its real part for a real matrix.
    ge, gu = g
    e, u = ans
    n = a.shape[-1]
    eye = _eye(n)
    ut = _swap(u)
    r = _col(ge) * eye
    if not _is_zero(gu):
        f = (1.0 - eye) / (_row(e) - _col(e) + eye)
        utgu = _bmm(ut, gu)
        r = r + f * utgu - f * _bmm(_bmm(ut, jnp.conj(u)), jnp.real(utgu) * eye)
    r = _bmm(_solve(ut, r), ut)
    return r if jnp._is_complex(a) else jnp.real(r)


eig_op = call_op(
    "eig", numpy=_eig_numpy, kernel=_eig_kernel,
    shape=lambda a: [((a.shape[0], a.shape[1]), _onp.dtype(_onp.complex128)),
                     (a.shape, _onp.dtype(_onp.complex128))],
    vjp=(_eig_vjp,))


@_jit.njit(cache=True, nogil=True)
def _svd_kernel(a):
    B, m, n = a.shape
    k = min(m, n)
    u = _onp.empty((B, m, k), a.dtype)
    s = _onp.empty((B, k), a.real.dtype)
    vh = _onp.empty((B, k, n), a.dtype)
    for i in range(B):
        ui, si, vhi = _onp.linalg.svd(a[i], full_matrices=False)
        for p in range(k):
            s[i, p] = si[p]
            for q in range(m):
                u[i, q, p] = ui[q, p]
            for q in range(n):
                vh[i, p, q] = vhi[p, q]
    return u, s, vh


def _svd_numpy(a):
    return tuple(_onp.ascontiguousarray(x) for x in _np_linalg.svd(a, full_matrices=False))


def _svd_shape(a):
    B, m, n = a.shape
    k = min(m, n)
    return [((B, m, k), a.dtype), ((B, k), _real_dtype(a.dtype)), ((B, k, n), a.dtype)]


def _svd_vjp(g, ans, a):
    # autograd's (J. Townsend, "Differentiating the singular value decomposition"), real and
    # complex: with v = vh^H, the thin SVD's cotangent is conj(u) T v^T plus, for a wide or a
    # tall matrix, the parts outside the span of v or u.  The conjugations vanish when real.
    gu, gs, gvh = g
    u, s, vh = ans
    m, n = a.shape[-2:]
    k = min(m, n)
    eye = _eye(k)
    uc, vhc = jnp.conj(u), jnp.conj(vh)
    out = _bmm(uc * _row(gs), vhc)
    if _is_zero(gu) and _is_zero(gvh):
        return out
    v, gv = jnp.conj(_swap(vh)), jnp.conj(_swap(gvh))
    f = 1.0 / (_row(s) ** 2 - _col(s) ** 2 + eye)
    utgu = _bmm(u, gu, ta=True)
    vtgv = _bmm(v, gv, ta=True)
    t = ((f * (utgu - jnp.conj(_swap(utgu)))) * _row(s)
         + _col(s) * (f * (vtgv - jnp.conj(_swap(vtgv)))))
    if jnp._is_complex(a):
        t = t + 1j * jnp.imag(utgu * eye) / _row(s)
    out = out + _bmm(_bmm(uc, t), vhc)
    if m < n:
        us = u / _row(s)
        out = out + jnp.conj(_bmm(us, gv, tb=True) - _bmm(_bmm(us, _bmm(gv, v, ta=True)),
                                                           jnp.conj(v), tb=True))
    elif m > n:
        vs = v / _row(s)
        out = out + _swap(_bmm(vs, gu, tb=True) - _bmm(_bmm(vs, _bmm(gu, u, ta=True)),
                                                       jnp.conj(u), tb=True))
    return out


svd_op = call_op("svd", numpy=_svd_numpy, kernel=_svd_kernel, shape=_svd_shape, vjp=(_svd_vjp,))


@_jit.njit(cache=True, nogil=True)
def _pinv_kernel(a, rcond):
    B, m, n = a.shape
    out = _onp.empty((B, n, m), a.dtype)
    for i in range(B):
        p = _onp.linalg.pinv(a[i], rcond)
        for r in range(n):
            for c in range(m):
                out[i, r, c] = p[r, c]
    return out


def _pinv_vjp(g, ans, a, rcond):
    # autograd's (the derivative of the pseudo-inverse at constant rank).
    m, n = a.shape[-2:]
    t1 = -_bmm(_bmm(ans, g, tb=True), ans)
    t2 = _bmm(_bmm(_bmm(ans, ans, tb=True), g), _eye(m) - _bmm(a, ans))
    t3 = _bmm(_bmm(_eye(n) - _bmm(ans, a), g), _bmm(ans, ans, ta=True))
    return _swap(t1 + t2 + t3)


pinv_op = call_op(
    "pinv", numpy=lambda a, rcond: _onp.ascontiguousarray(_np_linalg.pinv(a, rcond)),
    kernel=_pinv_kernel, static=("rcond",),
    shape=lambda a, rcond: [((a.shape[0], a.shape[2], a.shape[1]), a.dtype)],
    vjp=(_pinv_vjp,))


# ------------------------------------------------------------------------------------------------
# The functions
# ------------------------------------------------------------------------------------------------


def _traced(*xs):
    return any(isinstance(x, Tracer) for x in xs)


@_export
def inv(a):
    """numpy.linalg.inv of a matrix or a stack of them."""
    if not _traced(a):
        return _np_linalg.inv(a)
    a3, batch = _stack(a, "inv")
    return _unstack(apply(inv_op, a3), batch)


@_export
def det(a):
    """numpy.linalg.det of a matrix or a stack of them."""
    if not _traced(a):
        return _np_linalg.det(a)
    a3, batch = _stack(a, "det")
    return jnp.reshape(apply(det_op, a3), batch)


@_export
def slogdet(a):
    """numpy.linalg.slogdet: (sign, log|det|) of a matrix or a stack of them."""
    if not _traced(a):
        return _np_linalg.slogdet(a)
    a3, batch = _stack(a, "slogdet")
    sign, logdet = apply(slogdet_op, a3)
    return jnp.reshape(sign, batch), jnp.reshape(logdet, batch)


@_export
def solve(a, b):
    """numpy.linalg.solve (NumPy 2's rule: `b` is a vector only when 1-D), broadcast over the
    stacks' leading dimensions."""
    if not _traced(a, b):
        return _np_linalg.solve(a, b)
    sa, sb = jnp._shape(a), jnp._shape(b)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ShapeError(f"np.linalg.solve: `a` of shape {sa} is not a square matrix or a stack "
                         f"of them (at {user_frame()})")
    vector = len(sb) == 1
    if vector:
        b = jnp.reshape(b, sb + (1,))
        sb = sb + (1,)
    if sb[-2] != sa[-1]:
        raise ShapeError(f"np.linalg.solve: `a` of shape {sa} and `b` of shape "
                         f"{sb[:-1] if vector else sb} do not match: {sa[-1]} != {sb[-2]} "
                         f"(at {user_frame()})")
    try:
        batch = tuple(_onp.broadcast_shapes(sa[:-2], sb[:-2]))
    except ValueError:
        raise ShapeError(f"np.linalg.solve: the leading dimensions of `a` {sa} and `b` {sb} do "
                         f"not broadcast (at {user_frame()})") from None
    dt = _onp.result_type(_p._dtype(a), _p._dtype(b))
    dt = dt if dt.kind in "fc" else _onp.dtype(_onp.float64)
    B = _p._prod(batch)
    a3 = jnp.reshape(jnp.broadcast_to(_p._cast(a, dt), batch + sa[-2:]), (B,) + sa[-2:])
    b3 = jnp.reshape(jnp.broadcast_to(_p._cast(b, dt), batch + sb[-2:]), (B,) + sb[-2:])
    x = jnp.reshape(_solve(a3, b3), batch + sb[-2:])
    return jnp.reshape(x, batch + sb[-2:-1]) if vector else x


@_export
def cholesky(a, upper=False):
    """numpy.linalg.cholesky (lower, or `upper`) of a matrix or a stack of them: only the lower
    triangle of `a` is read, as LAPACK does (autograd's gradient is symmetrised)."""
    if not _traced(a):
        return _np_linalg.cholesky(a, upper=upper) if upper else _np_linalg.cholesky(a)
    a3, batch = _stack(a, "cholesky")
    L = _unstack(apply(cholesky_op, a3), batch)
    return _swap(L) if upper else L


@_export
def eigh(a, UPLO="L"):
    """numpy.linalg.eigh: eigenvalues (ascending) and eigenvectors of a symmetric matrix (or a
    stack), from its lower (UPLO="L") or upper ("U") triangle."""
    if not _traced(a):
        return _np_linalg.eigh(a, UPLO)
    if UPLO not in ("L", "U"):
        raise TracingError(f"np.linalg.eigh: UPLO must be 'L' or 'U', not {UPLO!r}")
    a3, batch = _stack(a, "eigh")
    if UPLO == "U":  # the upper triangle of a is the lower one of a^T
        a3 = _swap(a3)
    w, v = apply(eigh_op, a3)
    return _unstack(w, batch), _unstack(v, batch)


@_export
def eig(a):
    """numpy.linalg.eig: eigenvalues and eigenvectors (columns) of a square matrix or a stack,
    as NumPy computes them.  On traced values both are always complex (complex64 for float32
    and complex64 input): NumPy returns real arrays for a real matrix whose eigenvalues happen
    to be real, a type that depends on the values, which one compiled kernel cannot have.
    Take `np.real` where you know the eigenvalues are real.  Differentiable as autograd's eig
    (distinct eigenvalues; eigenvectors are unit-norm with LAPACK's phase, so only
    phase-invariant functions of them, such as `np.abs(v)`, have a gradient)."""
    if not _traced(a):
        return _np_linalg.eig(a)
    a3, batch = _stack(a, "eig")
    single = a3.dtype in (_onp.float32, _onp.complex64)
    if a3.dtype != _onp.complex128:
        a3 = a3.astype(_onp.complex128 if a3.dtype.kind == "c" else _onp.float64)
    w, v = apply(eig_op, a3)
    if single:
        w, v = w.astype(_onp.complex64), v.astype(_onp.complex64)
    return _unstack(w, batch), _unstack(v, batch)


@_export
def eigvals(a):
    """numpy.linalg.eigvals: the eigenvalues of a square matrix or a stack (complex on traced
    values, as `eig`)."""
    if not _traced(a):
        return _np_linalg.eigvals(a)
    return eig(a)[0]


@_export
def eigvalsh(a, UPLO="L"):
    """numpy.linalg.eigvalsh: the eigenvalues of a symmetric matrix (or a stack)."""
    if not _traced(a):
        return _np_linalg.eigvalsh(a, UPLO)
    return eigh(a, UPLO)[0]


@_export
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """numpy.linalg.svd of a matrix or a stack.  Differentiable with full_matrices=False (or a
    square matrix) or compute_uv=False, as in autograd; hermitian is not supported."""
    if not _traced(a):
        return _np_linalg.svd(a, full_matrices, compute_uv, hermitian)
    if hermitian:
        raise TracingError("np.linalg.svd: hermitian=True is not supported on traced values")
    a3, batch = _stack(a, "svd", square=False)
    m, n = a3.shape[-2:]
    if compute_uv and full_matrices and m != n:
        raise TracingError(f"np.linalg.svd: full_matrices=True of a non-square matrix (shape "
                           f"{a.shape}) is not supported on traced values (nor differentiable in "
                           f"autograd); pass full_matrices=False (at {user_frame()})")
    u, s, vh = apply(svd_op, a3)
    if not compute_uv:
        return _unstack(s, batch)
    return _unstack(u, batch), _unstack(s, batch), _unstack(vh, batch)


@_export
def svdvals(x):
    """numpy.linalg.svdvals: the singular values of a matrix or a stack."""
    return svd(x, compute_uv=False)


@_export
def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """numpy.linalg.pinv of a matrix or a stack (autograd's gradient: constant rank)."""
    if not _traced(a):
        if rtol is None:
            return _np_linalg.pinv(a, rcond, hermitian)
        return _np_linalg.pinv(a, hermitian=hermitian, rtol=rtol)
    if hermitian:
        raise TracingError("np.linalg.pinv: hermitian=True is not supported on traced values")
    a3, batch = _stack(a, "pinv", square=False)
    m, n = a3.shape[-2:]
    if rcond is None:
        rcond = rtol if rtol is not None else max(m, n) * _onp.finfo(a3.dtype).eps
    if not isinstance(rcond, (int, float, _onp.floating)):
        raise TracingError("np.linalg.pinv: rcond must be a number on traced values")
    return _unstack(apply(pinv_op, a3, rcond=float(rcond)), batch)


@_export
def matrix_power(a, n):
    """numpy.linalg.matrix_power: a matrix (or stack) to an integer power, by repeated
    squaring (a negative power inverts first)."""
    if not _traced(a):
        return _np_linalg.matrix_power(a, n)
    if not isinstance(n, (int, _onp.integer)):
        raise TracingError(f"np.linalg.matrix_power: the exponent must be an integer, not {n!r}")
    shape = jnp._shape(a)
    _stack(a, "matrix_power")
    if n == 0:
        return jnp.broadcast_to(_onp.eye(shape[-1], dtype=a.dtype), shape)
    if n < 0:
        a, n = inv(a), -n
    result, power = None, a
    while n:
        if n & 1:
            result = power if result is None else _p.matmul(result, power)
        n >>= 1
        if n:
            power = _p.matmul(power, power)
    return result


@_export
def multi_dot(arrays, *, out=None):
    """numpy.linalg.multi_dot: the product of a chain of matrices (1-D first and last allowed),
    left to right."""
    if not _traced(*arrays):
        return _np_linalg.multi_dot(arrays, out=out)
    if len(arrays) < 2:
        raise ShapeError("np.linalg.multi_dot: at least two arrays are needed")
    result = arrays[0]
    for x in arrays[1:]:
        result = _p.dot(result, x)
    return result


@_export
def matrix_transpose(x):
    """numpy.linalg.matrix_transpose: the last two axes swapped."""
    if not _traced(x):
        return _np_linalg.matrix_transpose(x)
    if x.ndim < 2:
        raise ShapeError(f"np.linalg.matrix_transpose: the array of shape {x.shape} needs at "
                         f"least 2 dimensions (at {user_frame()})")
    return _swap(x)


# --- norms --------------------------------------------------------------------------------------


def _vector_norm(x, ord, axis, keepdims):
    absx = jnp.abs(x)
    if ord is None or ord == 2:
        sq = x * x if x.dtype.kind != "c" else jnp.real(x * jnp.conj(x))
        return jnp.sqrt(jnp.sum(sq, axis=axis, keepdims=keepdims))
    if ord == _onp.inf:
        return jnp.max(absx, axis=axis, keepdims=keepdims)
    if ord == -_onp.inf:
        return jnp.min(absx, axis=axis, keepdims=keepdims)
    if ord == 0:
        return jnp.sum(jnp.not_equal(x, 0), axis=axis, keepdims=keepdims).astype(absx.dtype)
    if ord == 1:
        return jnp.sum(absx, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ShapeError(f"np.linalg.norm: invalid norm order {ord!r} for vectors "
                         f"(at {user_frame()})")
    ord = float(ord)
    return jnp.sum(absx ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    r, c = axes
    nd = x.ndim
    absx = jnp.abs(x)
    if ord is None or ord == "fro":
        sq = x * x if x.dtype.kind != "c" else jnp.real(x * jnp.conj(x))
        out = jnp.sqrt(jnp.sum(sq, axis=axes))
    elif ord in ("nuc", 2, -2):
        rest = [d for d in range(nd) if d not in (r, c)]
        s = svd(jnp.transpose(x, rest + [r, c]), compute_uv=False)
        out = {"nuc": lambda: jnp.sum(s, axis=-1), 2: lambda: jnp.max(s, axis=-1),
               -2: lambda: jnp.min(s, axis=-1)}[ord]()
    elif ord in (1, -1):
        sums = jnp.sum(absx, axis=r)  # the column sums
        out = (jnp.max if ord == 1 else jnp.min)(sums, axis=c - 1 if c > r else c)
    elif ord in (_onp.inf, -_onp.inf):
        sums = jnp.sum(absx, axis=c)  # the row sums
        out = (jnp.max if ord > 0 else jnp.min)(sums, axis=r - 1 if r > c else r)
    else:
        raise ShapeError(f"np.linalg.norm: invalid norm order {ord!r} for matrices "
                         f"(at {user_frame()})")
    if keepdims:
        out = jnp.reshape(out, tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    return out


@_export
def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: vector norms (None/2, 1, inf, -inf, 0, any p) and matrix norms
    (None/'fro', 'nuc', 1, -1, 2, -2, inf, -inf), over `axis` (an int or a pair), `keepdims`."""
    if not _traced(x):
        return _np_linalg.norm(x, ord, axis, keepdims)
    if x.dtype.kind not in "fc":
        x = x.astype(_onp.float64)
    nd = x.ndim
    if axis is None:
        if ord is None:
            out = _vector_norm(jnp.reshape(x, (-1,)), None, 0, False)
            return jnp.reshape(out, (1,) * nd) if keepdims else out
        if nd == 1:
            axis = (0,)
        elif nd == 2:
            axis = (0, 1)
        else:
            raise ShapeError(f"np.linalg.norm: improper number of dimensions to norm: ord={ord!r}"
                             f" of an array of shape {x.shape} (at {user_frame()})")
    axes = (axis,) if isinstance(axis, (int, _onp.integer)) else tuple(axis)
    axes = tuple(_p._axis_list(axes, nd, "np.linalg.norm"))
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ShapeError(f"np.linalg.norm: improper number of dimensions to norm: axis={axis!r} "
                     f"(at {user_frame()})")


@_export
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """numpy.linalg.vector_norm (axis None: of the flattened array)."""
    if not _traced(x):
        return _np_linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=ord)
    if axis is None:
        out = _vector_norm(jnp.reshape(x, (-1,)), ord, 0, False)
        return jnp.reshape(out, (1,) * x.ndim) if keepdims else out
    if isinstance(axis, tuple) and len(axis) > 1:
        axes = _p._axis_list(axis, x.ndim, "np.linalg.vector_norm")
        rest = [d for d in range(x.ndim) if d not in axes]
        moved = jnp.transpose(x, rest + axes)
        flat = jnp.reshape(moved, moved.shape[:len(rest)] + (-1,))
        out = _vector_norm(flat, ord, len(rest), False)
        if keepdims:
            out = jnp.reshape(out, tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
        return out
    return _vector_norm(x, ord, axis[0] if isinstance(axis, tuple) else axis, keepdims)


@_export
def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """numpy.linalg.matrix_norm over the last two axes."""
    if not _traced(x):
        return _np_linalg.matrix_norm(x, keepdims=keepdims, ord=ord)
    return norm(x, ord, (-2, -1), keepdims)


__getattr__ = _module_getattr("numpy.linalg", _np_linalg, {})
