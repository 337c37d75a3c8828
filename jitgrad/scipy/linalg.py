"""`jitgrad.scipy.linalg`: SciPy's `scipy.linalg`, traced where `SUPPORTED` says; every other name
is SciPy's own (it works on plain arrays and raises a clear error on traced ones).  Importing it
needs SciPy.

Triangular solves are an op of jitgrad.numpy.linalg (forward and back substitution in a Numba
loop, reading only the triangle); `cholesky`, `inv`, `det`, `solve` are NumPy's; `sqrtm` calls
SciPy from its kernel (objmode), with autograd's VJP through a Sylvester equation.
"""

import numpy as _onp
import scipy.linalg as _sp_linalg

from .. import _jit
from .._jit import NUMBA as numba
from ..errors import ShapeError, TracingError
from ..ir import Span
from ..numpy import _arrays
from ..numpy import _base as jnp
from ..numpy import _products as _p
from ..numpy import linalg as _la
from ..numpy._fallback import module_getattr as _module_getattr
from ..ops import REGISTRY as _REGISTRY
from ..ops import apply, call_op, export
from ..primitives import Prim
from ..trace import Tracer, bind, full, user_frame

SUPPORTED: dict = _REGISTRY.setdefault("scipy.linalg", {})


def _export(fn, *names):
    return export("scipy.linalg", *names)(fn)


def _traced(*xs):
    return any(isinstance(x, Tracer) for x in xs)


def _trans(trans) -> bool:
    if trans in (0, "N", "n"):
        return False
    if trans in (1, 2, "T", "t", "C", "c"):
        return True
    raise TracingError(f"scipy.linalg.solve_triangular: trans must be 0, 1, 2, 'N', 'T' or "
                       f"'C', not {trans!r}")


def _triangular(a, b, trans, lower, unit, name):
    sa, sb = jnp._shape(a), jnp._shape(b)
    if len(sa) != 2 or sa[0] != sa[1]:
        raise ShapeError(f"scipy.linalg.{name}: expected a square matrix, got shape {sa} "
                         f"(at {user_frame()})")
    if len(sb) not in (1, 2) or sb[0] != sa[0]:
        raise ShapeError(f"scipy.linalg.{name}: shapes of a {sa} and b {sb} are incompatible "
                         f"(at {user_frame()})")
    dt = _onp.result_type(_p._dtype(a), _p._dtype(b))
    dt = dt if dt.kind in "fc" else _onp.dtype(_onp.float64)
    n = sa[0]
    k = sb[1] if len(sb) == 2 else 1
    x = _la.solve_triangular(jnp.reshape(_p._cast(a, dt), (1, n, n)),
                             jnp.reshape(_p._cast(b, dt), (1, n, k)), lower, trans, unit)
    return jnp.reshape(x, sb)


@_export
def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """scipy.linalg.solve_triangular: a x = b (or a^T x = b, `trans`) reading only `a`'s upper
    (or `lower`) triangle; b of shape (n,) or (n, k)."""
    if not _traced(a, b):
        return _sp_linalg.solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b,
                                           check_finite=check_finite)
    return _triangular(a, b, _trans(trans), bool(lower), bool(unit_diagonal), "solve_triangular")


@_export
def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cholesky: the upper factor (or the `lower` one)."""
    if not _traced(a):
        return _sp_linalg.cholesky(a, lower, overwrite_a, check_finite)
    return _la.cholesky(a, upper=not lower)


@_export
def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cho_factor: (factor, lower).  On traced values the factor's other triangle
    is zero (SciPy leaves whatever was there)."""
    if not _traced(a):
        return _sp_linalg.cho_factor(a, lower, overwrite_a, check_finite)
    return cholesky(a, lower), bool(lower)


@_export
def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """scipy.linalg.cho_solve: a x = b from a's Cholesky factor (c, lower), reading only c's
    triangle."""
    c, low = c_and_lower
    if not _traced(c, b):
        return _sp_linalg.cho_solve((c, low), b, overwrite_b, check_finite)
    if low:  # L L^T x = b
        y = _triangular(c, b, False, True, False, "cho_solve")
        return _triangular(c, y, True, True, False, "cho_solve")
    y = _triangular(c, b, True, False, False, "cho_solve")  # U^T U x = b
    return _triangular(c, y, False, False, False, "cho_solve")


@_export
def inv(a, overwrite_a=False, check_finite=True):
    """scipy.linalg.inv (numpy.linalg.inv's)."""
    if not _traced(a):
        return _sp_linalg.inv(a, overwrite_a, check_finite)
    return _la.inv(a)


@_export
def det(a, overwrite_a=False, check_finite=True):
    """scipy.linalg.det (numpy.linalg.det's)."""
    if not _traced(a):
        return _sp_linalg.det(a, overwrite_a, check_finite)
    return _la.det(a)


@_export
def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """scipy.linalg.solve for a general square `a` (assume_a other than None/"gen"/"general" is
    not supported on traced values); `transposed` solves a^T x = b."""
    if not _traced(a, b):
        kw = {} if assume_a is None else {"assume_a": assume_a}
        return _sp_linalg.solve(a, b, lower=lower, overwrite_a=overwrite_a,
                                overwrite_b=overwrite_b, check_finite=check_finite,
                                transposed=transposed, **kw)
    if assume_a not in (None, "gen", "general"):
        raise TracingError(f"scipy.linalg.solve: assume_a={assume_a!r} is not supported on "
                           f"traced values (the general solve is)")
    if transposed:
        a = _p._swap(a)
    return _la.solve(a, b)


@_export
def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """scipy.linalg.solve_banded: solve a x = b for the banded matrix whose diagonals are the
    rows of `ab` (LAPACK's band storage, ab[u + i - j, j] = a[i, j]).  On traced values the
    band is gathered into the square matrix and solved by LU with partial pivoting, as
    `np.linalg.solve`: n^3 work where SciPy's banded LU takes n (l + u)^2, so for large n with
    a narrow band it is slower than SciPy, but its gradient with respect to `ab` (as autograd's,
    it is the band of -w x^T where a^T w = g) and to `b` comes with it, to any order."""
    if not _traced(ab, b):
        return _sp_linalg.solve_banded(l_and_u, ab, b, overwrite_ab, overwrite_b, check_finite)
    try:
        lower, upper = (int(k) for k in l_and_u)
    except (TypeError, ValueError):
        raise TracingError(f"scipy.linalg.solve_banded: l_and_u must be two integers (the "
                           f"numbers of sub- and super-diagonals), not {l_and_u!r}") from None
    shape, b_shape = jnp._shape(ab), jnp._shape(b)
    if len(shape) != 2 or shape[0] != lower + upper + 1:
        raise ShapeError(f"scipy.linalg.solve_banded: ab has shape {shape}; with (l, u) = "
                         f"({lower}, {upper}) it must be ({lower + upper + 1}, n) "
                         f"(at {user_frame()})")
    n = shape[1]
    if len(b_shape) not in (1, 2) or b_shape[0] != n:
        raise ShapeError(f"scipy.linalg.solve_banded: b of shape {b_shape} does not fit a banded "
                         f"matrix of {n} columns (at {user_frame()})")
    i, j = _onp.indices((n, n))
    row = upper + i - j
    inside = (row >= 0) & (row <= lower + upper)
    flat = _arrays.concatenate([_arrays.ravel(ab), _onp.zeros(1, _p._dtype(ab))])
    dense = flat[_onp.where(inside, row * n + j, (lower + upper + 1) * n)]
    return _la.solve(dense, b)


# --- sqrtm: SciPy's, called out of the kernel ---------------------------------------------------


def _sqrtm_py(a):
    return _onp.ascontiguousarray(_onp.real(_sp_linalg.sqrtm(a)), dtype=_onp.float64)


def _sylvester_py(a, b, q):
    return _onp.ascontiguousarray(_sp_linalg.solve_sylvester(a, b, q), dtype=_onp.float64)


@_jit.njit(cache=True)
def _sqrtm_kernel(a):
    with numba.objmode(out="float64[:, ::1]"):
        out = _sqrtm_py(a)
    return out


@_jit.njit(cache=True)
def _sylvester_kernel(a, b, q):
    with numba.objmode(out="float64[:, ::1]"):
        out = _sylvester_py(a, b, q)
    return out


def _sylvester_vjp_q(g, ans, a, b, q):
    return apply(sylvester_op, jnp.transpose(a), jnp.transpose(b), g)


sylvester_op = call_op(
    "solve_sylvester", numpy=_sylvester_py, kernel=_sylvester_kernel,
    shape=lambda a, b, q: [(q.shape, _onp.dtype(_onp.float64))],
    # a x + x b = q: with gq the solution of a^T gq + gq b^T = g, ga = -gq x^T, gb = -x^T gq.
    vjp=(lambda g, ans, a, b, q: -_p.matmul(_sylvester_vjp_q(g, ans, a, b, q), jnp.transpose(ans)),
         lambda g, ans, a, b, q: -_p.matmul(jnp.transpose(ans), _sylvester_vjp_q(g, ans, a, b, q)),
         _sylvester_vjp_q))

sqrtm_op = call_op(
    "sqrtm", numpy=_sqrtm_py, kernel=_sqrtm_kernel,
    shape=lambda a: [(a.shape, _onp.dtype(_onp.float64))],
    # autograd's: the solution of ans^T x + x ans^T = g.
    vjp=(lambda g, ans, a: apply(sylvester_op, jnp.transpose(ans), jnp.transpose(ans), g),))


@_export
def solve_sylvester(a, b, q):
    """scipy.linalg.solve_sylvester: x with a x + x b = q (real, float64)."""
    if not _traced(a, b, q):
        return _sp_linalg.solve_sylvester(a, b, q)
    f64 = _onp.dtype(_onp.float64)
    return apply(sylvester_op, _p._cast(a, f64), _p._cast(b, f64), _p._cast(q, f64))


@_export
def sqrtm(A, disp=True, blocksize=64):
    """scipy.linalg.sqrtm of a real matrix with a real square root (the real part is kept),
    float64."""
    if not _traced(A):
        return _sp_linalg.sqrtm(A, disp, blocksize) if disp is not True else _sp_linalg.sqrtm(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ShapeError(f"scipy.linalg.sqrtm: expected a square matrix, got shape {A.shape} "
                         f"(at {user_frame()})")
    return apply(sqrtm_op, _p._cast(A, _onp.dtype(_onp.float64)))


@_export
def block_diag(*arrs):
    """scipy.linalg.block_diag: the arrays (0-, 1- or 2-D) on the diagonal of a zero matrix."""
    if not _traced(*arrs):
        return _sp_linalg.block_diag(*arrs)
    blocks = []
    for x in arrs:
        s = jnp._shape(x)
        if len(s) > 2:
            raise ShapeError(f"scipy.linalg.block_diag: arguments must be at most 2-D, got shape "
                             f"{s} (at {user_frame()})")
        blocks.append(jnp.reshape(x, (1,) * (2 - len(s)) + tuple(s)))
    rows = sum(jnp._shape(b)[0] for b in blocks)
    cols = sum(jnp._shape(b)[1] for b in blocks)
    dt = _onp.result_type(*[_p._dtype(b) for b in blocks])
    out = full((rows, cols), 0.0, dt)
    r = c = 0
    for b in blocks:
        h, w = jnp._shape(b)
        if h and w:
            out = bind(Prim.add_into, out, _p._cast(b, dt), index=(Span(r, 1, h), Span(c, 1, w)))
        r, c = r + h, c + w
    return out


__getattr__ = _module_getattr("scipy.linalg", _sp_linalg, {})
