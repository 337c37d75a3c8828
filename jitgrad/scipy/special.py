"""`jitgrad.scipy.special`: SciPy's special functions, traced, with autograd's derivatives.

Each function is an elementwise op (it fuses into generated loops).  Inside kernels the scalar
implementations are SciPy's own C functions (`scipy.special.cython_special`), called through
named LLVM symbols registered when this module is imported, so cached kernels refer to them by
name; `erf`, `erfc` use Numba's libm and `polygamma` (n >= 1) a Numba port of Cephes' Hurwitz
zeta, the one SciPy uses.  Every other name is SciPy's own (plain arrays only).
"""

from __future__ import annotations

import math

import llvmlite.binding as _llvm
import numba
import numpy as onp
import scipy.special as _sp
from numba.extending import get_cython_function_address

import jitgrad.numpy as np

from ..errors import ShapeError, TracingError
from ..numpy._base import _axes
from ..ops import REGISTRY, apply, elementwise_op, export, not_differentiable
from ..trace import Tracer, user_frame

SUPPORTED: dict = REGISTRY.setdefault("scipy.special", {})


def _export(fn):
    return export("scipy.special")(fn)


def _external(name: str, mangled: str, nargs: int):
    """SciPy's C function `mangled` of cython_special, as a Numba function of `nargs` doubles
    and Cython's trailing `skip_dispatch` flag, named by an LLVM symbol (cache-safe)."""
    symbol = f"jitgrad_scipy_special_{name}"
    _llvm.add_symbol(symbol, get_cython_function_address("scipy.special.cython_special", mangled))
    return numba.types.ExternalFunction(
        symbol, numba.float64(*([numba.float64] * nargs), numba.int32))


def _traced(*args) -> bool:
    return any(isinstance(a, Tracer) for a in args)


def _ufunc(op, name: str, doc: str, nargs: int = 1):
    """The public function `scipy.special.<name>`: `op` applied elementwise."""
    if nargs == 1:
        def fn(x):
            return apply(op, x)
    elif nargs == 2:
        def fn(a, x):
            return apply(op, a, x)
    else:
        def fn(a, b, x):
            return apply(op, a, b, x)
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = doc
    return _export(fn)


_INV_ROOT_PI = 0.56418958354775627928
_ROOT_PI = 1.7724538509055159
_LOG_PI = math.log(math.pi)
_ROOT_2PI = math.sqrt(2.0 * math.pi)

# ------------------------------------------------------------------------------------------------
# Gamma and related functions
# ------------------------------------------------------------------------------------------------

_c_gamma = _external("gamma", "__pyx_fuse_1gamma", 1)
_c_gammaln = _external("gammaln", "gammaln", 1)
_c_psi = _external("psi", "__pyx_fuse_1psi", 1)
_c_rgamma = _external("rgamma", "__pyx_fuse_1rgamma", 1)
_c_gammasgn = _external("gammasgn", "gammasgn", 1)
_c_gammainc = _external("gammainc", "gammainc", 2)
_c_gammaincc = _external("gammaincc", "gammaincc", 2)
_c_beta = _external("beta", "beta", 2)
_c_betaln = _external("betaln", "betaln", 2)
_c_betainc = _external("betainc", "__pyx_fuse_0betainc", 3)


@numba.njit(cache=True)
def _gamma_scalar(x):
    return _c_gamma(float(x), 0)


@numba.njit(cache=True)
def _gammaln_scalar(x):
    return _c_gammaln(float(x), 0)


@numba.njit(cache=True)
def _psi_scalar(x):
    return _c_psi(float(x), 0)


@numba.njit(cache=True)
def _rgamma_scalar(x):
    return _c_rgamma(float(x), 0)


@numba.njit(cache=True)
def _gammasgn_scalar(x):
    return _c_gammasgn(float(x), 0)


@numba.njit(cache=True)
def _gammainc_scalar(a, x):
    return _c_gammainc(float(a), float(x), 0)


@numba.njit(cache=True)
def _gammaincc_scalar(a, x):
    return _c_gammaincc(float(a), float(x), 0)


@numba.njit(cache=True)
def _beta_scalar(a, b):
    return _c_beta(float(a), float(b), 0)


@numba.njit(cache=True)
def _betaln_scalar(a, b):
    return _c_betaln(float(a), float(b), 0)


@numba.njit(cache=True)
def _betainc_scalar(a, b, x):
    return _c_betainc(float(a), float(b), float(x), 0)


# Cephes' zeta.c (SciPy's Hurwitz zeta): Euler-Maclaurin summation, to machine precision.
_ZETA_A = (12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9,
           7.47242496e10, -2.950130727918164224e12, 1.1646782814350067249e14,
           -4.5979787224074726105e15, 1.8152105401943546773e17, -7.1661652561756670113e18)


@numba.njit(cache=True)
def _zeta(x, q):
    """The Hurwitz zeta function sum_k (k + q) ** -x, for x > 1 (Cephes' zeta)."""
    machep = 1.11022302462515654042e-16
    if x == 1.0:
        return math.inf
    if x < 1.0:
        return math.nan
    if q <= 0.0:
        if q == math.floor(q):
            return math.inf
        if x != math.floor(x):
            return math.nan
    if q > 1e8:
        return (1.0 / (x - 1.0) + 1.0 / (2.0 * q)) * q ** (1.0 - x)
    s = q ** -x
    a = q
    i = 0
    b = 0.0
    while i < 9 or a <= 9.0:
        i += 1
        a += 1.0
        b = a ** -x
        s += b
        if abs(b / s) < machep:
            return s
    w = a
    s += b * w / (x - 1.0)
    s -= 0.5 * b
    a = 1.0
    k = 0.0
    for j in range(12):
        a *= x + k
        b /= w
        t = a * b / _ZETA_A[j]
        s = s + t
        if abs(t / s) < machep:
            return s
        k += 1.0
        a *= x + k
        b /= w
        k += 1.0
    return s


@numba.njit(cache=True)
def _polygamma_scalar(n, x):
    n = float(n)
    x = float(x)
    if n == 0.0:
        return _c_psi(x, 0)
    if n < 0.0 or n != math.floor(n):
        return math.nan
    sign = 1.0 if int(n) % 2 == 1 else -1.0
    return sign * math.gamma(n + 1.0) * _zeta(n + 1.0, x)


_gamma = elementwise_op(
    "gamma", numpy=_sp.gamma, scalar=_gamma_scalar,
    vjp=(lambda g, ans, x: g * ans * psi(x),))
_gammaln = elementwise_op(
    "gammaln", numpy=_sp.gammaln, scalar=_gammaln_scalar,
    vjp=(lambda g, ans, x: g * psi(x),))
_psi = elementwise_op(
    "psi", numpy=_sp.psi, scalar=_psi_scalar,
    vjp=(lambda g, ans, x: g * polygamma(1, x),))
_polygamma = elementwise_op(
    "polygamma", numpy=_sp.polygamma, scalar=_polygamma_scalar,
    vjp=(None, lambda g, ans, n, x: g * polygamma(n + 1, x)))
_rgamma = elementwise_op(
    "rgamma", numpy=_sp.rgamma, scalar=_rgamma_scalar,
    vjp=(lambda g, ans, x: g * psi(x) / -gamma(x),))
_gammasgn = elementwise_op("gammasgn", numpy=_sp.gammasgn, scalar=_gammasgn_scalar, vjp=None)


def _gammainc_x(sign):
    return lambda g, ans, a, x: g * (sign * np.exp(-x) * np.power(x, a - 1.0) / gamma(a))


_gammainc = elementwise_op(
    "gammainc", numpy=_sp.gammainc, scalar=_gammainc_scalar,
    vjp=(not_differentiable("scipy.special.gammainc", "first argument a"), _gammainc_x(1.0)))
_gammaincc = elementwise_op(
    "gammaincc", numpy=_sp.gammaincc, scalar=_gammaincc_scalar,
    vjp=(not_differentiable("scipy.special.gammaincc", "first argument a"), _gammainc_x(-1.0)))
_beta = elementwise_op(
    "beta", numpy=_sp.beta, scalar=_beta_scalar,
    vjp=(lambda g, ans, a, b: g * ans * (psi(a) - psi(a + b)),
         lambda g, ans, a, b: g * ans * (psi(b) - psi(a + b))))
_betaln = elementwise_op(
    "betaln", numpy=_sp.betaln, scalar=_betaln_scalar,
    vjp=(lambda g, ans, a, b: g * (psi(a) - psi(a + b)),
         lambda g, ans, a, b: g * (psi(b) - psi(a + b))))
_betainc = elementwise_op(
    "betainc", numpy=_sp.betainc, scalar=_betainc_scalar,
    vjp=(not_differentiable("scipy.special.betainc", "first argument a"),
         not_differentiable("scipy.special.betainc", "second argument b"),
         lambda g, ans, a, b, x: g * np.power(x, a - 1.0) * np.power(1.0 - x, b - 1.0)
         / beta(a, b)))

gamma = _ufunc(_gamma, "gamma", "scipy.special.gamma.")
gammaln = _ufunc(_gammaln, "gammaln", "scipy.special.gammaln: log |gamma(x)|.")
psi = _ufunc(_psi, "psi", "scipy.special.psi (digamma).")
digamma = _ufunc(_psi, "digamma", "scipy.special.digamma (psi).")
polygamma = _ufunc(_polygamma, "polygamma", "scipy.special.polygamma(n, x); no gradient "
                   "flows to the order n.", nargs=2)
rgamma = _ufunc(_rgamma, "rgamma", "scipy.special.rgamma: 1 / gamma(x).")
gammasgn = _ufunc(_gammasgn, "gammasgn", "scipy.special.gammasgn (zero gradient).")
gammainc = _ufunc(_gammainc, "gammainc", "scipy.special.gammainc(a, x), regularized lower "
                  "incomplete gamma; differentiable in x only (as in autograd).", nargs=2)
gammaincc = _ufunc(_gammaincc, "gammaincc", "scipy.special.gammaincc(a, x), regularized "
                   "upper incomplete gamma; differentiable in x only (as in autograd).", nargs=2)
beta = _ufunc(_beta, "beta", "scipy.special.beta(a, b).", nargs=2)
betaln = _ufunc(_betaln, "betaln", "scipy.special.betaln(a, b): log |beta(a, b)|.", nargs=2)
betainc = _ufunc(_betainc, "betainc", "scipy.special.betainc(a, b, x), regularized incomplete "
                 "beta; differentiable in x only (as in autograd).", nargs=3)


_HALVES: dict = {}  # d -> [0, 1/2, ..., (d - 1)/2], one array per d for every trace


@_export
def multigammaln(a, d):
    """scipy.special.multigammaln(a, d), d an int.  On traced values a > (d - 1) / 2 is not
    checked."""
    if not _traced(a):
        return _sp.multigammaln(a, d)
    d = int(d)
    shape = a.shape
    offsets = _HALVES.setdefault(d, onp.arange(d, dtype=onp.float64) / 2.0)
    terms = gammaln(np.reshape(a, shape + (1,)) - offsets)
    return np.sum(terms, axis=len(shape)) + d * (d - 1) / 4.0 * _LOG_PI


# ------------------------------------------------------------------------------------------------
# Error functions and the normal distribution
# ------------------------------------------------------------------------------------------------

_c_erfinv = _external("erfinv", "__pyx_fuse_0erfinv", 1)
_c_erfcinv = _external("erfcinv", "erfcinv", 1)
_c_ndtr = _external("ndtr", "__pyx_fuse_1ndtr", 1)
_c_log_ndtr = _external("log_ndtr", "__pyx_fuse_1log_ndtr", 1)
_c_ndtri = _external("ndtri", "ndtri", 1)


@numba.njit(cache=True)
def _erfinv_scalar(x):
    return _c_erfinv(float(x), 0)


@numba.njit(cache=True)
def _erfcinv_scalar(x):
    return _c_erfcinv(float(x), 0)


@numba.njit(cache=True)
def _ndtr_scalar(x):
    return _c_ndtr(float(x), 0)


@numba.njit(cache=True)
def _log_ndtr_scalar(x):
    return _c_log_ndtr(float(x), 0)


@numba.njit(cache=True)
def _ndtri_scalar(x):
    return _c_ndtri(float(x), 0)


_erf = elementwise_op(
    "erf", numpy=_sp.erf, code="math.erf({0})",
    vjp=(lambda g, ans, x: 2.0 * _INV_ROOT_PI * g * np.exp(-x * x),))
_erfc = elementwise_op(
    "erfc", numpy=_sp.erfc, code="math.erfc({0})",
    vjp=(lambda g, ans, x: -2.0 * _INV_ROOT_PI * g * np.exp(-x * x),))
_erfinv = elementwise_op(
    "erfinv", numpy=_sp.erfinv, scalar=_erfinv_scalar,
    vjp=(lambda g, ans, x: g * (_ROOT_PI / 2.0) * np.exp(ans * ans),))
_erfcinv = elementwise_op(
    "erfcinv", numpy=_sp.erfcinv, scalar=_erfcinv_scalar,
    vjp=(lambda g, ans, x: -g * (_ROOT_PI / 2.0) * np.exp(ans * ans),))
_ndtr = elementwise_op(
    "ndtr", numpy=_sp.ndtr, scalar=_ndtr_scalar,
    vjp=(lambda g, ans, x: g * np.exp(-0.5 * x * x) / _ROOT_2PI,))
_log_ndtr = elementwise_op(
    "log_ndtr", numpy=_sp.log_ndtr, scalar=_log_ndtr_scalar,
    vjp=(lambda g, ans, x: g * np.exp(-0.5 * x * x - ans) / _ROOT_2PI,))
_ndtri = elementwise_op(
    "ndtri", numpy=_sp.ndtri, scalar=_ndtri_scalar,
    vjp=(lambda g, ans, x: g * _ROOT_2PI * np.exp(0.5 * ans * ans),))

erf = _ufunc(_erf, "erf", "scipy.special.erf (real arguments).")
erfc = _ufunc(_erfc, "erfc", "scipy.special.erfc (real arguments).")
erfinv = _ufunc(_erfinv, "erfinv", "scipy.special.erfinv.")
erfcinv = _ufunc(_erfcinv, "erfcinv", "scipy.special.erfcinv.")
ndtr = _ufunc(_ndtr, "ndtr", "scipy.special.ndtr: the standard normal cdf (real arguments).")
log_ndtr = _ufunc(_log_ndtr, "log_ndtr", "scipy.special.log_ndtr: log of the standard normal "
                  "cdf (real arguments).")
ndtri = _ufunc(_ndtri, "ndtri", "scipy.special.ndtri: the standard normal quantile.")

# ------------------------------------------------------------------------------------------------
# Logistic functions, xlogy
# ------------------------------------------------------------------------------------------------

_c_expit = _external("expit", "__pyx_fuse_0expit", 1)
_c_xlogy = _external("xlogy", "__pyx_fuse_1xlogy", 2)
_c_xlog1py = _external("xlog1py", "__pyx_fuse_1xlog1py", 2)


@numba.njit(cache=True)
def _expit_scalar(x):
    return _c_expit(float(x), 0)


@numba.njit(cache=True)
def _xlogy_scalar(x, y):
    return _c_xlogy(float(x), float(y), 0)


@numba.njit(cache=True)
def _xlog1py_scalar(x, y):
    return _c_xlog1py(float(x), float(y), 0)


_expit = elementwise_op(
    "expit", numpy=_sp.expit, scalar=_expit_scalar,
    vjp=(lambda g, ans, x: g * ans * (1.0 - ans),))
_xlogy = elementwise_op(
    "xlogy", numpy=_sp.xlogy, scalar=_xlogy_scalar,
    vjp=(lambda g, ans, x, y: g * np.log(y), lambda g, ans, x, y: g * x / y))
_xlog1py = elementwise_op(
    "xlog1py", numpy=_sp.xlog1py, scalar=_xlog1py_scalar,
    vjp=(lambda g, ans, x, y: g * np.log1p(y), lambda g, ans, x, y: g * x / (1.0 + y)))

expit = _ufunc(_expit, "expit", "scipy.special.expit: the logistic sigmoid 1 / (1 + exp(-x)).")
xlogy = _ufunc(_xlogy, "xlogy", "scipy.special.xlogy(x, y): x * log(y), 0 where x == 0 (real "
               "arguments).", nargs=2)
xlog1py = _ufunc(_xlog1py, "xlog1py", "scipy.special.xlog1py(x, y): x * log1p(y), 0 where "
                 "x == 0 (real arguments).", nargs=2)


@_export
def logit(x):
    """scipy.special.logit: log(x / (1 - x))."""
    if not _traced(x):
        return _sp.logit(x)
    return np.log(x) - np.log1p(-x)


# A value that no gradient flows through: the shift that keeps logsumexp's exponentials finite.
_shift = elementwise_op("logsumexp_shift", numpy=onp.positive, code="{0}", dtype="same",
                        vjp=None)


@_export
def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """scipy.special.logsumexp with `axis` (None, int or tuple), `b`, `keepdims` and
    `return_sign`; shifted by the maximum (where b != 0), so it neither overflows nor
    underflows; -inf entries and all -inf rows as in SciPy.  Real arguments."""
    if not _traced(a, b):
        return _sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    shape = onp.shape(a) if not isinstance(a, Tracer) else a.shape
    if b is not None:
        bshape = onp.shape(b) if not isinstance(b, Tracer) else b.shape
        try:
            shape = onp.broadcast_shapes(shape, bshape)
        except ValueError:
            raise ShapeError(f"scipy.special.logsumexp: a of shape {shape} and b of shape "
                             f"{bshape} do not broadcast (at {user_frame()})") from None
        a = np.broadcast_to(a if _traced(a) else onp.asarray(a, dtype=onp.float64), shape)
    elif not _traced(a):
        a = onp.asarray(a, dtype=onp.float64)
    axes = _axes(axis, len(shape), "scipy.special.logsumexp")
    kept = tuple(1 if d in axes else n for d, n in enumerate(shape))
    out_shape = kept if keepdims else tuple(n for d, n in enumerate(shape) if d not in axes)
    masked = a if b is None else np.where(np.not_equal(b, 0), a, -math.inf)
    m = np.reshape(np.max(masked, axis=axes, keepdims=True), kept)
    m = apply(_shift, np.where(np.equal(np.abs(m), math.inf), 0.0, m))
    if b is None:
        e = np.exp(a - m)
    else:  # entries with b == 0 drop out, even infinite ones
        e = np.exp(np.where(np.not_equal(b, 0), a - m, -math.inf)) * b
    s = np.reshape(np.sum(e, axis=axes, keepdims=True), kept)
    if return_sign:
        sign = np.sign(s)
        s = np.abs(s)
    out = np.reshape(np.log(s) + m, out_shape)
    if return_sign:
        return out, np.reshape(sign, out_shape)
    return out


# ------------------------------------------------------------------------------------------------
# Bessel functions
# ------------------------------------------------------------------------------------------------

_c_j0 = _external("j0", "j0", 1)
_c_j1 = _external("j1", "j1", 1)
_c_y0 = _external("y0", "y0", 1)
_c_y1 = _external("y1", "y1", 1)
_c_i0 = _external("i0", "i0", 1)
_c_i1 = _external("i1", "i1", 1)
_c_jv = _external("jv", "__pyx_fuse_1jv", 2)
_c_yn = _external("yn", "__pyx_fuse_0yn", 2)
_c_iv = _external("iv", "__pyx_fuse_1iv", 2)
_c_ive = _external("ive", "__pyx_fuse_1ive", 2)


@numba.njit(cache=True)
def _j0_scalar(x):
    return _c_j0(float(x), 0)


@numba.njit(cache=True)
def _j1_scalar(x):
    return _c_j1(float(x), 0)


@numba.njit(cache=True)
def _y0_scalar(x):
    return _c_y0(float(x), 0)


@numba.njit(cache=True)
def _y1_scalar(x):
    return _c_y1(float(x), 0)


@numba.njit(cache=True)
def _i0_scalar(x):
    return _c_i0(float(x), 0)


@numba.njit(cache=True)
def _i1_scalar(x):
    return _c_i1(float(x), 0)


@numba.njit(cache=True)
def _jv_scalar(v, x):
    return _c_jv(float(v), float(x), 0)


@numba.njit(cache=True)
def _yn_scalar(n, x):
    return _c_yn(float(n), float(x), 0)


@numba.njit(cache=True)
def _iv_scalar(v, x):
    return _c_iv(float(v), float(x), 0)


@numba.njit(cache=True)
def _ive_scalar(v, x):
    return _c_ive(float(v), float(x), 0)


_j0 = elementwise_op("j0", numpy=_sp.j0, scalar=_j0_scalar,
                     vjp=(lambda g, ans, x: -g * j1(x),))
_y0 = elementwise_op("y0", numpy=_sp.y0, scalar=_y0_scalar,
                     vjp=(lambda g, ans, x: -g * y1(x),))
_j1 = elementwise_op("j1", numpy=_sp.j1, scalar=_j1_scalar,
                     vjp=(lambda g, ans, x: g * (j0(x) - jn(2, x)) / 2.0,))
_y1 = elementwise_op("y1", numpy=_sp.y1, scalar=_y1_scalar,
                     vjp=(lambda g, ans, x: g * (y0(x) - yn(2, x)) / 2.0,))
_jn = elementwise_op("jn", numpy=_sp.jv, scalar=_jv_scalar,
                     vjp=(None, lambda g, ans, n, x: g * (jn(n - 1, x) - jn(n + 1, x)) / 2.0))
_yn = elementwise_op("yn", numpy=_sp.yn, scalar=_yn_scalar,
                     vjp=(None, lambda g, ans, n, x: g * (yn(n - 1, x) - yn(n + 1, x)) / 2.0))
_i0 = elementwise_op("i0", numpy=_sp.i0, scalar=_i0_scalar,
                     vjp=(lambda g, ans, x: g * i1(x),))
_i1 = elementwise_op("i1", numpy=_sp.i1, scalar=_i1_scalar,
                     vjp=(lambda g, ans, x: g * (i0(x) + iv(2, x)) / 2.0,))
_iv = elementwise_op("iv", numpy=_sp.iv, scalar=_iv_scalar,
                     vjp=(None, lambda g, ans, v, x: g * (iv(v - 1, x) + iv(v + 1, x)) / 2.0))
_ive = elementwise_op(
    "ive", numpy=_sp.ive, scalar=_ive_scalar,
    vjp=(None, lambda g, ans, v, x: g * (ans * (v / x - np.sign(x)) + ive(v + 1, x))))

j0 = _ufunc(_j0, "j0", "scipy.special.j0: Bessel function of the first kind, order 0.")
j1 = _ufunc(_j1, "j1", "scipy.special.j1: Bessel function of the first kind, order 1.")
y0 = _ufunc(_y0, "y0", "scipy.special.y0: Bessel function of the second kind, order 0.")
y1 = _ufunc(_y1, "y1", "scipy.special.y1: Bessel function of the second kind, order 1.")
jn = _ufunc(_jn, "jn", "scipy.special.jn(n, x): Bessel function of the first kind; no "
            "gradient flows to n.", nargs=2)
yn = _ufunc(_yn, "yn", "scipy.special.yn(n, x): Bessel function of the second kind, integer "
            "order; no gradient flows to n.", nargs=2)
i0 = _ufunc(_i0, "i0", "scipy.special.i0: modified Bessel function of order 0.")
i1 = _ufunc(_i1, "i1", "scipy.special.i1: modified Bessel function of order 1.")
iv = _ufunc(_iv, "iv", "scipy.special.iv(v, x): modified Bessel function of the first kind "
            "(real x); no gradient flows to v.", nargs=2)
ive = _ufunc(_ive, "ive", "scipy.special.ive(v, x): exponentially scaled iv (real x); no "
             "gradient flows to v.", nargs=2)


def __getattr__(name):
    """SciPy's other special functions: their own, on plain arrays only."""
    fn = getattr(_sp, name)
    if not callable(fn) or isinstance(fn, type):
        return fn

    def on_plain_arrays(*args, **kwargs):
        if any(isinstance(a, Tracer) for a in list(args) + list(kwargs.values())):
            raise TracingError(f"scipy.special.{name} is not supported on traced values (at "
                               f"{user_frame()})")
        return fn(*args, **kwargs)

    on_plain_arrays.__name__ = name
    on_plain_arrays.__doc__ = fn.__doc__
    return on_plain_arrays
