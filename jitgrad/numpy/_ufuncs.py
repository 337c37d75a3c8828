"""NumPy's elementwise functions beyond the core ones of `_base.py`: each an elementwise op that
fuses into generated loops (`floor`, `arctan2`, `sinc`, ...) or a composition of existing
functions (`deg2rad`, `float_power`, ...).  Derivatives are autograd's (numpy_vjps.py),
including its conventions at kinks and ties: `fmax`/`fmin` split a tie's gradient evenly,
`clip` gives no gradient to `x` at a bound, rounding functions and `floor_divide` are piecewise
constant (zero gradients), and `nan_to_num` passes the gradient only where `x` is finite."""

from __future__ import annotations

import math

import numpy as _onp

from .. import _jit
from ..errors import TracingError
from ..ops import apply, elementwise_op, export, not_differentiable
from ..trace import Tracer, user_frame
from . import _base as jnp

_LOG2, _LOG10 = math.log(2.0), math.log(10.0)


def _traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


def _kind(x) -> str:
    return x.dtype.kind if isinstance(x, Tracer) else _onp.result_type(x).kind


def _real_only(name: str, *xs) -> None:
    for x in xs:
        if _kind(x) == "c":
            raise TracingError(f"np.{name}: complex arguments are not supported "
                               f"(at {user_frame()})")


def _no_bool(name: str, x) -> None:
    if _kind(x) == "b":
        raise TracingError(f"np.{name}: boolean arguments are not supported (at {user_frame()}); "
                           f"convert with x.astype(float) first")


def _unary(name: str, op, *, real=False):
    """`np.<name>(x)`: NumPy's on plain values, `op` on traced ones."""
    numpy_fn = getattr(_onp, name)

    def fn(x):
        if not isinstance(x, Tracer):
            return numpy_fn(x)
        if real:
            _real_only(name, x)
        return apply(op, x)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as numpy.{name}."
    return export("numpy")(fn)


def _binary(name: str, op, *, real=True):
    numpy_fn = getattr(_onp, name)

    def fn(x1, x2):
        if not _traced(x1, x2):
            return numpy_fn(x1, x2)
        if real:
            _real_only(name, x1, x2)
        return apply(op, x1, x2)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as numpy.{name}."
    return export("numpy")(fn)


# ------------------------------------------------------------------------------------------------
# Exponentials, logarithms, inverse hyperbolic functions
# ------------------------------------------------------------------------------------------------

_exp2 = elementwise_op("exp2", numpy=_onp.exp2, code="np.exp2({0})",
                       vjp=(lambda g, ans, x: g * ans * _LOG2,))
_log2 = elementwise_op("log2", numpy=_onp.log2, code="np.log2({0})",
                       vjp=(lambda g, ans, x: g / (x * _LOG2),))
_log10 = elementwise_op("log10", numpy=_onp.log10, code="np.log10({0})",
                        vjp=(lambda g, ans, x: g / (x * _LOG10),))
_arcsinh = elementwise_op("arcsinh", numpy=_onp.arcsinh, code="np.arcsinh({0})",
                          vjp=(lambda g, ans, x: g / jnp.sqrt(x * x + 1.0),))
_arccosh = elementwise_op("arccosh", numpy=_onp.arccosh, code="np.arccosh({0})",
                          vjp=(lambda g, ans, x: g / jnp.sqrt((x - 1.0) * (x + 1.0)),))
_arctanh = elementwise_op("arctanh", numpy=_onp.arctanh, code="np.arctanh({0})",
                          vjp=(lambda g, ans, x: g / (1.0 - x * x),))
_cbrt = elementwise_op("cbrt", numpy=_onp.cbrt, code="np.cbrt({0})",
                       vjp=(lambda g, ans, x: g / (3.0 * ans * ans),))

exp2 = _unary("exp2", _exp2)
log2 = _unary("log2", _log2)
log10 = _unary("log10", _log10)
arcsinh = _unary("arcsinh", _arcsinh)
arccosh = _unary("arccosh", _arccosh)
arctanh = _unary("arctanh", _arctanh)
cbrt = _unary("cbrt", _cbrt, real=True)

# ------------------------------------------------------------------------------------------------
# sinc: sin(pi x) / (pi x), with its derivatives as ops (a series near 0, where the closed forms
# cancel catastrophically)
# ------------------------------------------------------------------------------------------------

# f(y) = sin(y) / y = sum_k (-1)^k y^(2k) / (2k+1)!: the coefficients of f' / y and f'' in y^2.
_D1 = _onp.array([(-1) ** k * 2 * k / math.factorial(2 * k + 1) for k in range(1, 14)])
_D2 = _onp.array([(-1) ** k * 2 * k * (2 * k - 1) / math.factorial(2 * k + 1)
                  for k in range(1, 14)])


@_jit.njit(cache=True, nogil=True)
def _sinc_scalar(x):
    y = math.pi * (1.0e-20 if x == 0 else x)  # as NumPy: exactly 1 at 0
    return math.sin(y) / y


@_jit.njit(cache=True, nogil=True)
def _dsinc_scalar(x):
    y = math.pi * x
    if abs(y) < 0.5:
        y2, s = y * y, 0.0
        for k in range(_D1.size - 1, -1, -1):
            s = s * y2 + _D1[k]
        return math.pi * y * s
    return math.pi * (y * math.cos(y) - math.sin(y)) / (y * y)


@_jit.njit(cache=True, nogil=True)
def _d2sinc_scalar(x):
    y = math.pi * x
    if abs(y) < 0.5:
        y2, s = y * y, 0.0
        for k in range(_D2.size - 1, -1, -1):
            s = s * y2 + _D2[k]
        return math.pi * math.pi * s
    return math.pi * math.pi * ((2.0 - y * y) * math.sin(y) - 2.0 * y * math.cos(y)) / (y * y * y)


def _dsinc_numpy(x, second=False):
    x = _onp.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else _onp.float64
    y = math.pi * x.astype(_onp.float64)
    with _onp.errstate(all="ignore"):
        if second:
            series = math.pi ** 2 * _onp.polyval(_D2[::-1], y * y)
            closed = math.pi ** 2 * ((2.0 - y * y) * _onp.sin(y) - 2.0 * y * _onp.cos(y)) / y ** 3
        else:
            series = math.pi * y * _onp.polyval(_D1[::-1], y * y)
            closed = math.pi * (y * _onp.cos(y) - _onp.sin(y)) / (y * y)
    out = _onp.where(_onp.abs(y) < 0.5, series, closed).astype(dtype)
    return out[()] if out.ndim == 0 else out


_d2sinc = elementwise_op("d2sinc", numpy=lambda x: _dsinc_numpy(x, True), scalar=_d2sinc_scalar,
                         vjp=(not_differentiable("np.sinc's third derivative", "argument"),))
_dsinc = elementwise_op("dsinc", numpy=_dsinc_numpy, scalar=_dsinc_scalar,
                        vjp=(lambda g, ans, x: g * apply(_d2sinc, x),))
_sinc = elementwise_op("sinc", numpy=_onp.sinc, scalar=_sinc_scalar,
                       vjp=(lambda g, ans, x: g * apply(_dsinc, x),))
sinc = _unary("sinc", _sinc, real=True)

# ------------------------------------------------------------------------------------------------
# tanh's derivative, 1 - tanh(x)**2 = 1/cosh(x)**2, accurate where tanh saturates
# ------------------------------------------------------------------------------------------------


_SECH2_SWITCH = 1.0 - 2.0 ** -11  # |x| < 4.16: relative error below 2**11 ulp (5e-13)


@_jit.njit(cache=True, nogil=True)
def _sech2_scalar(x, tanh_x):
    if abs(tanh_x) < _SECH2_SWITCH:
        return 1.0 - tanh_x * tanh_x  # cancels at most 11 bits here, and needs no exp
    t = math.exp(-2.0 * abs(x))
    return 4.0 * t / ((1.0 + t) * (1.0 + t))  # neither cancels nor overflows


def _sech2_numpy(x, tanh_x):
    t = _onp.exp(-2.0 * _onp.abs(x))
    return _onp.where(_onp.abs(tanh_x) < _SECH2_SWITCH, 1.0 - tanh_x * tanh_x,
                      4.0 * t / (1.0 + t) ** 2)


# sech2(x, tanh(x)): the derivative of tanh for real x (ad.py).  1 - tanh(x)**2 alone is wrong by
# 77% at x = 19 and 0 beyond, where 1/cosh**2 is 1e-16 and less.
sech2 = elementwise_op(
    "sech2", numpy=_sech2_numpy, scalar=_sech2_scalar,
    vjp=(lambda g, ans, x, tanh_x: -2.0 * g * tanh_x * ans, None))  # d/dx; tanh_x follows x


# ------------------------------------------------------------------------------------------------
# Angles
# ------------------------------------------------------------------------------------------------


@export("numpy", "deg2rad", "radians")
def deg2rad(x):
    """numpy.deg2rad (numpy.radians)."""
    return _onp.deg2rad(x) if not isinstance(x, Tracer) else jnp.multiply(x, math.pi / 180.0)


@export("numpy", "rad2deg", "degrees")
def rad2deg(x):
    """numpy.rad2deg (numpy.degrees)."""
    return _onp.rad2deg(x) if not isinstance(x, Tracer) else jnp.multiply(x, 180.0 / math.pi)


radians, degrees = deg2rad, rad2deg

# ------------------------------------------------------------------------------------------------
# Binary functions
# ------------------------------------------------------------------------------------------------


def _sq_norm(x, y):
    return x * x + y * y


_arctan2 = elementwise_op("arctan2", numpy=_onp.arctan2, code="np.arctan2({0}, {1})",
                          vjp=(lambda g, ans, x, y: g * y / _sq_norm(x, y),
                               lambda g, ans, x, y: -g * x / _sq_norm(x, y)))
_hypot = elementwise_op("hypot", numpy=_onp.hypot, code="np.hypot({0}, {1})",
                        vjp=(lambda g, ans, x, y: g * x / ans, lambda g, ans, x, y: g * y / ans))
_logaddexp = elementwise_op("logaddexp", numpy=_onp.logaddexp, code="np.logaddexp({0}, {1})",
                            vjp=(lambda g, ans, x, y: g * jnp.exp(x - ans),
                                 lambda g, ans, x, y: g * jnp.exp(y - ans)))
_logaddexp2 = elementwise_op("logaddexp2", numpy=_onp.logaddexp2, code="np.logaddexp2({0}, {1})",
                             vjp=(lambda g, ans, x, y: g * exp2(x - ans),
                                  lambda g, ans, x, y: g * exp2(y - ans)))

arctan2 = _binary("arctan2", _arctan2)
hypot = _binary("hypot", _hypot)
logaddexp = _binary("logaddexp", _logaddexp)
logaddexp2 = _binary("logaddexp2", _logaddexp2)


def _balanced(x, ans, y):
    # 1 where x is the winner, 1/2 on a tie (autograd's balanced_eq).
    return (x == ans) / (1.0 + (x == y))


# NumPy's (array loops') choice on ties (x2: signed zeros) and NaNs (the other operand).
_fmax = elementwise_op("fmax", numpy=_onp.fmax, dtype="same",
                       code="({1} if {1} >= {0} or {0} != {0} else {0})",
                       vjp=(lambda g, ans, x, y: g * _balanced(x, ans, y),
                            lambda g, ans, x, y: g * _balanced(y, ans, x)))
_fmin = elementwise_op("fmin", numpy=_onp.fmin, dtype="same",
                       code="({1} if {1} <= {0} or {0} != {0} else {0})",
                       vjp=(lambda g, ans, x, y: g * _balanced(x, ans, y),
                            lambda g, ans, x, y: g * _balanced(y, ans, x)))
fmax = _binary("fmax", _fmax)
fmin = _binary("fmin", _fmin)

def _narrow(x1, x2):
    """A Python number against a float32 array becomes a float32 (NumPy's weak scalars), so
    that compiled code computes x % 0.3 with float32's 0.3, as NumPy does."""
    def fit(x, other):
        if type(x) in (int, float) and isinstance(other, Tracer) and other.dtype.kind == "f":
            return other.dtype.type(x)
        return x

    return fit(x1, x2), fit(x2, x1)


# Python's % and // on numbers are NumPy's remainder and floor_divide, also in Numba (for floats,
# ints, zero divisors, infinities and signed zeros).
_mod = elementwise_op("remainder", numpy=_onp.remainder, code="{0} % {1}", dtype="same",
                      vjp=(lambda g, ans, x, y: g,
                           lambda g, ans, x, y: -g * floor(jnp.divide(x, y))))
_floor_divide = elementwise_op("floor_divide", numpy=_onp.floor_divide, code="{0} // {1}",
                               dtype="same", vjp=None)


@export("numpy", "remainder", "mod")
def remainder(x1, x2):
    """numpy.remainder (numpy.mod, `%`): the sign of the divisor.  d/dx2 is -floor(x1 / x2)."""
    if not _traced(x1, x2):
        return _onp.remainder(x1, x2)
    _real_only("remainder", x1, x2)
    return apply(_mod, *_narrow(x1, x2))


mod = remainder


@export("numpy")
def floor_divide(x1, x2):
    """numpy.floor_divide (`//`): piecewise constant, zero gradients."""
    if not _traced(x1, x2):
        return _onp.floor_divide(x1, x2)
    _real_only("floor_divide", x1, x2)
    return apply(_floor_divide, *_narrow(x1, x2))


@_jit.njit(cache=True, nogil=True)
def _int_fmod_scalar(a, b):
    # C's % on integers (the sign of the dividend), 0 for a zero divisor as NumPy gives.
    if b == 0:
        return 0 * a
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _fmod_vjp_divisor(g, ans, x, y):
    return -g * trunc(jnp.divide(x, y))


_fmod = elementwise_op("fmod", numpy=_onp.fmod, code="np.fmod({0}, {1})", dtype="same",
                       vjp=(lambda g, ans, x, y: g, _fmod_vjp_divisor))
_int_fmod = elementwise_op("int_fmod", numpy=_onp.fmod, scalar=_int_fmod_scalar, dtype="same",
                           vjp=None)


@export("numpy")
def fmod(x1, x2):
    """numpy.fmod: the sign of the dividend.  d/dx2 is -trunc(x1 / x2)."""
    if not _traced(x1, x2):
        return _onp.fmod(x1, x2)
    _real_only("fmod", x1, x2)
    ints = _onp.result_type(*(x.dtype if isinstance(x, Tracer) else x for x in (x1, x2)))
    return apply(_int_fmod if ints.kind in "biu" else _fmod, *_narrow(x1, x2))


def _copysign_vjp(g, ans, x, y):
    return g * jnp.sign(x) * jnp.sign(ans)  # 0 at x = 0, as abs's


_copysign = elementwise_op("copysign", numpy=_onp.copysign, code="np.copysign({0}, {1})",
                           vjp=(_copysign_vjp, None))
copysign = _binary("copysign", _copysign)


@_jit.njit(cache=True, nogil=True)
def _heaviside_scalar(x, h0):
    if x < 0:
        return 0.0
    if x > 0:
        return 1.0
    if x == 0:
        return 1.0 * h0
    return math.nan


_heaviside = elementwise_op("heaviside", numpy=_onp.heaviside, scalar=_heaviside_scalar,
                            vjp=(None, lambda g, ans, x, h0: jnp.where(x == 0, g, 0.0)))
heaviside = _binary("heaviside", _heaviside)


@export("numpy")
def float_power(x1, x2):
    """numpy.float_power: x1 ** x2 in float64 (complex128 for complex operands)."""
    if not _traced(x1, x2):
        return _onp.float_power(x1, x2)

    def wide(x):
        if not isinstance(x, Tracer):
            return x if isinstance(x, (int, float, complex)) else _onp.asarray(
                x, _onp.complex128 if _kind(x) == "c" else _onp.float64)
        return x.astype(_onp.complex128 if x.dtype.kind == "c" else _onp.float64)

    return jnp.power(wide(x1), wide(x2))


@export("numpy")
def positive(x):
    """numpy.positive: x itself."""
    return _onp.positive(x) if not isinstance(x, Tracer) else x


# ------------------------------------------------------------------------------------------------
# Rounding: piecewise constant, zero gradients (as autograd)
# ------------------------------------------------------------------------------------------------

_floor = elementwise_op("floor", numpy=_onp.floor, code="np.floor({0})", dtype="same", vjp=None)
_ceil = elementwise_op("ceil", numpy=_onp.ceil, code="np.ceil({0})", dtype="same", vjp=None)
_trunc = elementwise_op("trunc", numpy=_onp.trunc, code="np.trunc({0})", dtype="same", vjp=None)
_rint = elementwise_op("rint", numpy=_onp.rint, code="np.rint({0})", vjp=None)


def _rounding(name: str, op):
    numpy_fn = getattr(_onp, name)

    def fn(x):
        if not isinstance(x, Tracer):
            return numpy_fn(x)
        _real_only(name, x)
        _no_bool(name, x)
        if x.dtype.kind in "iu":
            return x  # an integer is its own floor (NumPy keeps the integer dtype)
        return apply(op, x)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as numpy.{name}: zero gradient."
    return export("numpy")(fn)


floor = _rounding("floor", _floor)
ceil = _rounding("ceil", _ceil)
trunc = _rounding("trunc", _trunc)
fix = _rounding("fix", _trunc)


@export("numpy")
def rint(x):
    """numpy.rint: round half to even (a float result from integers too); zero gradient."""
    if not isinstance(x, Tracer):
        return _onp.rint(x)
    _real_only("rint", x)
    _no_bool("rint", x)
    return apply(_rint, x)


@_jit.njit(cache=True, nogil=True)
def _round_scalar(x, decimals):
    # NumPy's algorithm: scale, round half to even, unscale.
    if decimals >= 0:
        s = 10.0 ** decimals
        return _onp.rint(x * s) / s
    s = 10.0 ** -decimals
    return _onp.rint(x / s) * s

_round = elementwise_op("round", numpy=lambda x, decimals: _onp.round(x, decimals),
                        scalar=_round_scalar, static=("decimals",), dtype="same", vjp=None)


@export("numpy", "round", "around", "round_")
def round(a, decimals=0, out=None):  # noqa: A001
    """numpy.round / numpy.around with `decimals` (negative too): zero gradient.  `out` is not
    supported on traced values."""
    if not isinstance(a, Tracer):
        return _onp.round(a, decimals, out=out)
    if out is not None:
        raise TracingError(f"np.round: out= is not supported on traced values (at {user_frame()})")
    _real_only("round", a)
    _no_bool("round", a)
    decimals = int(decimals)
    if a.dtype.kind in "iu" and decimals >= 0:
        return a
    if decimals == 0:
        return apply(_rint, a)
    return apply(_round, a, decimals=decimals)


around = round

# ------------------------------------------------------------------------------------------------
# Classification, nan_to_num, clip
# ------------------------------------------------------------------------------------------------

_isnan = elementwise_op("isnan", numpy=_onp.isnan, code="np.isnan({0})", dtype="bool", vjp=None)
_isinf = elementwise_op("isinf", numpy=_onp.isinf, code="np.isinf({0})", dtype="bool", vjp=None)
_isfinite = elementwise_op("isfinite", numpy=_onp.isfinite, code="np.isfinite({0})",
                           dtype="bool", vjp=None)
_signbit = elementwise_op("signbit", numpy=_onp.signbit, code="np.signbit({0})", dtype="bool",
                          vjp=None)
isnan = _unary("isnan", _isnan)
isinf = _unary("isinf", _isinf)
isfinite = _unary("isfinite", _isfinite)
signbit = _unary("signbit", _signbit, real=True)


@_jit.njit(cache=True, nogil=True)
def _nan_to_num_scalar(x, nan, posinf, neginf):
    if x != x:
        return nan
    if x == math.inf:
        return posinf
    if x == -math.inf:
        return neginf
    return 1.0 * x


_nan_to_num = elementwise_op(
    "nan_to_num", numpy=lambda x, nan, posinf, neginf: _onp.nan_to_num(
        x, nan=nan, posinf=posinf, neginf=neginf),
    scalar=_nan_to_num_scalar, static=("nan", "posinf", "neginf"), dtype="same",
    vjp=(lambda g, ans, x, **params: jnp.where(isfinite(x), g, 0.0),))


@export("numpy")
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """numpy.nan_to_num with `nan`, `posinf`, `neginf` (the dtype's largest magnitudes by
    default).  The gradient flows where x is finite only (autograd's).  Not for complex traced
    values."""
    if not isinstance(x, Tracer):
        return _onp.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    _real_only("nan_to_num", x)
    if x.dtype.kind != "f":
        return x
    big = float(_onp.finfo(x.dtype).max)
    return apply(_nan_to_num, x, nan=float(nan), posinf=big if posinf is None else float(posinf),
                 neginf=-big if neginf is None else float(neginf))


def _clip_vjp_x(g, ans, x, lo, hi):
    # autograd's: no gradient at either bound.
    return jnp.where(ans != lo, jnp.where(ans != hi, g, 0.0), 0.0)


def _clip_vjp_lo(g, ans, x, lo, hi):
    return jnp.where(ans == lo, jnp.where(ans != hi, g, 0.0), 0.0)


def _clip_vjp_hi(g, ans, x, lo, hi):
    return jnp.where(ans == hi, g, 0.0)


@_jit.njit(cache=True, nogil=True)
def _clip_scalar(x, lo, hi):
    # NumPy's: a NaN x stays, a tie gives the bound (signed zeros included).
    m = x if (x != x or x > lo) else lo
    return m if (m != m or m < hi) else hi


_clip = elementwise_op("clip", numpy=_onp.clip, scalar=_clip_scalar, dtype="same",
                       vjp=(_clip_vjp_x, _clip_vjp_lo, _clip_vjp_hi))


@export("numpy")
def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):  # noqa: A002
    """numpy.clip (bounds by position, as a_min/a_max, or as min/max; None for no bound).  As
    autograd, `a` gets no gradient where the result equals a bound; a traced bound gets it where
    it is the result.  `out` is not supported on traced values."""
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if not _traced(a, lo, hi):
        if lo is None and hi is None:
            return _onp.array(a, copy=True)
        return _onp.clip(a, lo, hi, out=out)
    if out is not None:
        raise TracingError(f"np.clip: out= is not supported on traced values (at {user_frame()})")
    _real_only("clip", a, *(b for b in (lo, hi) if b is not None))
    if lo is None and hi is None:
        return a
    kind = _kind(a)
    if kind == "b":
        _no_bool("clip", a)
    if kind in "iu":
        info = _onp.iinfo(a.dtype if isinstance(a, Tracer) else _onp.result_type(a))
        low, high = int(info.min), int(info.max)
    else:
        low, high = -math.inf, math.inf
    return apply(_clip, a, low if lo is None else lo, high if hi is None else hi)
