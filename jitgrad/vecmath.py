"""float64 `exp`, `expm1`, `log`, `log1p`, `sin`, `cos`, `tanh`, `sigmoid` and `pow` for Numba
kernels, written so that LLVM vectorises a loop that calls them.

Numba lowers `np.exp(x[i])` to a call of the scalar libm function, and a loop with a call in it
stays scalar (there is no SVML in llvmlite).  Here each function is arithmetic and selects only:
a range reduction, a polynomial, and a rebuild of the result from the bits of a float (the bit
casts are Numba intrinsics), with every special case (nan, +-inf, +-0, overflow, denormals)
chosen by a select at the end, so a loop over them becomes `<4 x double>` code with AVX2 or
AVX-512 (LLVM prefers 256-bit vectors on AVX-512 machines).  The algorithms are the classic ones
(Cody and Waite's reduction, as in fdlibm, Cephes and SLEEF), with Taylor polynomials a term
or two longer than a minimax fit would need, so that every coefficient is plainly 1/n! or
2/(2n+1), and for tanh near 0 a convergent of Lambert's continued fraction.

Measured on tests/test_vecmath.py's points (1.1 to 1.9 million a function: log-uniform over
the whole float64 range, both signs, over the function's working range, and dense at its hard
spots: near 0, the overflow and underflow thresholds, denormals, 1 and -1, sqrt(2) times powers
of 2, every 7th multiple of pi/2 below 2**20 and its neighbours; pow on 1.05 million (x, y)
pairs, described below), against NumPy 2.4's float64 result and against 80-bit `np.longdouble`
rounded to float64 (the "true" result, within 2**-64):

| function | max ulp vs NumPy | max ulp vs true | ns/element, 1M elements (libm loop, NumPy) |
| --- | --- | --- | --- |
| exp | 1 | 1 | 1.1 (4.1, 0.6) |
| expm1 | 1 | 1 | 1.4 (9.3, 0.9) |
| log | 1 | 1 | 1.3 (3.2, 0.9) |
| log1p | 1 | 1 | 1.4 (9.9, 1.1) |
| sin, cos | 1 | 1 | 2.0 (14, 14) |
| tanh | 1 | 1 | 2.5 (12, 1.4) |
| sigmoid | - | 2 | 1.8 (4.1 for 1 / (1 + np.exp(-x)) in a loop, 2.0 as NumPy ufuncs) |
| pow | 1 | 1 | 6.1 (10.5 for x ** y in a loop, 2.2: NumPy's pow is SIMD, with tables) |

(A Numba loop on this 2-core AVX-512 machine; `python -m benchmarks.vecmath` prints the table.
The tests assert 2 ulp.)

pow(x, y) is e**(y log x), and y log x is as large as 745 where the result is still a float, so
an error e in log x makes one of 745 e in the result: log and exp are carried in double-double,
table-free (the design of SLEEF's xpow).  log(abs(x)) = k ln 2 + 2 atanh(s), s = f / (2 + f) as
in log, with s, s**2, s**3 and the series' terms in 2/3 and 2/5 as double-doubles (the errors of
their products by `_fma`, LLVM's llvm.fma, always fused), within 2**-67 of log x; y log x is a
double-double too (an FMA), and its low part is added to exp's reduced argument r, whose
1 + r + r**2/2 is summed exactly, so that the result is rounded about once (a denormal twice, to
53 bits and then to its ulp).  Measured on pairs with x log-uniform over the positive floats and
y log x uniform over [-746, 710] (the results from below the denormals to beyond overflow), x
near 1 with y up to 2**64, x at the ends of log's reduction, negative x with integer y, small
integer y over the whole range of x, everyday and arbitrary pairs and the edge values: within
0.62 ulp of the true value.  The special cases are C99's and NumPy's, chosen by selects at the
end: pow(x, +-0) = 1 and pow(1, y) = 1 even for nan, pow(-1, +-inf) = 1, a negative finite x
with a non-integer y gives nan, an odd integer y (below 2**53; beyond, every float is even)
keeps the sign of x, of -0 and -inf too, +-0 and +-inf give 0 or inf by the sign of y, and
overflow and underflow give inf and 0 (or denormals) with that sign.  NumPy's result exactly at
every edge value, but for pow(MAX, 0.5): sqrt(MAX) is 2**-110 below the midpoint of 2**512 and
the float below it, where pow gives 2**512.  pow costs about 4 exps: about 160 instructions for
4 lanes (no division but one); with 512-bit vectors, 4.1 ns.  Without FMA hardware, llvm.fma is
libm's fma on each lane: right, but slow.

sin and cos reduce x by pi/2 in four parts (three of 33 bits, so that n * part is exact for
n < 2**20, and a fourth of 53), carrying the reduced argument as a double-double: within 1 ulp
for abs(x) < 2**20 = 1048576, also at the doubles nearest to a multiple of pi/2 (every multiple
below 2**20 and its neighbours were checked).  Beyond that bound (and at +-inf) they call libm's
sin or cos.  A call in a loop would stop LLVM vectorising it, so that call goes through `_libm`,
a function with masked vector variants (LLVM's vector-function ABI): the vectorised loop calls
the variant with the mask of the lanes beyond the bound, and the variant returns at once when
no lane is (one test per vector).

Edge values are NumPy's exactly: exp(-740) is a denormal, exp(710) = inf, log(0) = -inf,
log(-1) = nan, log1p(-1) = -inf, log1p(-2) = nan, and sin, expm1, log1p, tanh keep the sign of
-0.  No function uses fastmath's nnan/ninf flags; `contract` (fused multiply-add) is on: every
product whose rounding the algorithms rely on is exact, so a fused one gives the same result
(and pow's exact products are FMAs by `_fma`, fused whatever `contract` does).

The functions are `jitgrad._jit.njit` stand-ins, made into dispatchers by `jitgrad._jit.ready()`
(which also makes the intrinsics: importing this module does not import Numba).  A kernel calls
them through the module, after `ready()`, and LLVM inlines them into its loop:

    >>> import numba, numpy as np
    >>> import jitgrad._jit, jitgrad.vecmath as vm
    >>> jitgrad._jit.ready()
    >>> @numba.njit
    ... def kernel(x, out):
    ...     for i in range(x.size):
    ...         out[i] = vm.sin(x[i]) * vm.exp(x[i]) + vm.log1p(x[i] * x[i])
    >>> x = np.linspace(-3, 3, 7); out = np.empty_like(x); kernel(x, out)
    >>> bool(np.allclose(out, np.sin(x) * np.exp(x) + np.log1p(x * x), rtol=1e-15, atol=0))
    True
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

from . import _jit

__all__ = ["cos", "exp", "expm1", "log", "log1p", "logistic", "pow", "sigmoid", "sin",
           "tanh"]

# error_model="numpy": a division by zero gives inf instead of raising, so no function has an
# exception path (which would keep a calling loop scalar).
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


# ------------------------------------------------------------------------------------------------
# Constants, derived here from pi and ln 2 to 110 digits
# ------------------------------------------------------------------------------------------------

_PI = Fraction("3.14159265358979323846264338327950288419716939937510582097494459230781640628620"
               "899862803482534211706798214808651")
_LN2 = Fraction("0.6931471805599453094172321214581765680755001343602552541206800094933936219696"
                "94715605863326996418687542")


def _split(value: Fraction, bits: int, parts: int) -> tuple:
    """`value` as a sum of `parts` floats, each but the last of at most `bits` significant bits
    (so that its product with an integer of 53 - `bits` bits is exact)."""
    out = []
    for _ in range(parts - 1):
        e = math.frexp(float(value))[1]
        scale = Fraction(2) ** (bits - e)
        head = Fraction(round(value * scale)) / scale
        out.append(float(head))
        value -= head
    return (*out, float(value))


_SHIFT = 6755399441055744.0  # 1.5 * 2**52: t = y + _SHIFT rounds y to an integer n, and
#                              bits(t) - bits(_SHIFT) is n, for abs(n) < 2**51
_INV_LN2 = float(1 / _LN2)
_LN2_HI, _LN2_LO = _split(_LN2, 42, 2)  # k * _LN2_HI exact for abs(k) < 2**11
_TWO_OVER_PI = float(2 / _PI)
_PIO2_1, _PIO2_2, _PIO2_3, _PIO2_4 = _split(_PI / 2, 33, 4)  # n * part exact for n < 2**20
_TRIG_BOUND = 1048576.0  # 2**20: beyond, sin and cos call libm
_SQRT_HALF = math.sqrt(0.5)
_INF = math.inf
_NAN = math.nan

# Polynomial coefficients, constant term first (evaluated by `_horner`).
# exp(r) = 1 + r + r**2 * _EXP_Q(r) and expm1(r) = r + r**2 * _EXP_Q(r) on abs(r) <= ln(2) / 2:
# the terms up to r**13, the first left out is below 2**-57 of the result.
_EXP_Q = tuple(float(Fraction(1, math.factorial(n + 2))) for n in range(12))
# log(1 + f) = 2 atanh(s), s = f / (2 + f), abs(s) <= 0.1716: 2s + s * _LOG_R(s**2) with
# _LOG_R(z) = sum 2 z**n / (2n + 1), n = 1..10 (the first term left out, n = 11, is < 2**-60).
_LOG_R = tuple(float(Fraction(2, 2 * n + 1)) for n in range(1, 11))
# sin(r) = r + r z _SIN_P(z) and cos(r) = 1 - z/2 + z**2 _COS_C(z), z = r**2, abs(r) <= pi/4:
# sin to r**17, cos to r**16 (the first terms left out are below 2**-62 and 2**-58).
_SIN_P = tuple(float(Fraction((-1) ** n, math.factorial(2 * n + 1))) for n in range(1, 9))
_COS_C = tuple(float(Fraction((-1) ** n, math.factorial(2 * n))) for n in range(2, 9))


def _lambert(terms: int) -> tuple:
    """S, Q (constant term first) with tanh(a) = a - a z S(z) / Q(z), z = a**2, from the
    convergent a P(z) / Q(z) = a / (1 + z / (3 + z / (5 + ... z / (2 terms - 1)))) of Lambert's
    continued fraction of tanh: S = (Q - P) / z."""
    num, den = [Fraction(2 * terms - 1)], [Fraction(1)]  # the tail, from the bottom: num / den
    for j in range(terms - 2, -1, -1):  # (2j + 1) + z den / num = ((2j + 1) num + z den) / num
        top = [(2 * j + 1) * c for c in num] + [Fraction(0)] * (len(den) + 1 - len(num))
        for i, c in enumerate(den):
            top[i + 1] += c
        num, den = top, num
    p, q = den, num  # tanh(a) = a p(z) / q(z)
    p = p + [Fraction(0)] * (len(q) - len(p))
    s = [(qi - pi) / q[0] for pi, qi in zip(p[1:], q[1:])]
    return tuple(float(c) for c in s), tuple(float(c / q[0]) for c in q)


# tanh on abs(a) < 0.55: the convergent of 8 terms is within 2**-60 of tanh.
_TANH_S, _TANH_Q = _lambert(8)

# pow's log(1 + f) = 2 atanh(s) = 2s + s**3 (2/3 + 2/5 z + z**2 _POW_T(z)), z = s**2,
# abs(s) <= 0.1716, with 2/3 and 2/5 as double-doubles: _POW_T(z) = sum 2 z**(n - 3) / (2n + 1),
# n = 3..12 (the first term left out, n = 13, is below 2**-70 of the result).
_POW_C3_HI, _POW_C3_LO = _split(Fraction(2, 3), 53, 2)
_POW_C5_HI, _POW_C5_LO = _split(Fraction(2, 5), 53, 2)
_POW_T = tuple(float(Fraction(2, 2 * n + 1)) for n in range(3, 13))
# pow's polynomials by even and odd coefficients (two Horner chains in x**2, half as long)
_POW_T_EVEN, _POW_T_ODD = _POW_T[0::2], _POW_T[1::2]
_EXP_C_EVEN, _EXP_C_ODD = _EXP_Q[1::2], _EXP_Q[2::2]  # e**r = 1 + r + r**2/2 + r**3 _EXP_C(r)
_TWO52 = 4503599627370496.0  # 2**52: from here on every float is an integer
_TWO53 = 9007199254740992.0  # 2**53: from here on every float is an even integer


# ------------------------------------------------------------------------------------------------
# Intrinsics: a float's bits as an int64 and back, libm's sin and cos behind a vector ABI
# ------------------------------------------------------------------------------------------------


class _Intrinsic(_jit.Lazy):
    """A Numba intrinsic, made by `make()` when it is first needed.

    `_jit.ready()` puts the `_dispatcher` of every `Lazy` it finds in a jitgrad module in place
    of the stand-in; here that attribute makes the intrinsic (Numba is imported by then)."""

    def __init__(self, make):
        functools.update_wrapper(self, make)
        self.py_func, self.options, self._make, self._made = make, {}, make, None

    @property
    def _dispatcher(self):
        if self._made is None:
            self._made = self._make()
        return self._made


def _intrinsic(make):
    with _jit._LOCK:  # the lock that `ready()` holds while it swaps stand-ins
        return make() if _jit.is_ready() else _Intrinsic(make)


@_intrinsic
def _bits():
    """`_bits(x)`: the bits of the float64 `x` as an int64."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _bits(typingctx, x):
        if x != types.float64:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return types.int64(x), codegen

    return _bits


@_intrinsic
def _float():
    """`_float(i)`: the float64 whose bits are the int64 `i`."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _float(typingctx, i):
        if not isinstance(i, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            i64 = context.cast(builder, args[0], sig.args[0], types.int64)
            return builder.bitcast(i64, context.get_value_type(types.float64))

        return types.float64(i), codegen

    return _float


@_intrinsic
def _fma():
    """`_fma(a, b, c)`: a * b + c rounded once, LLVM's `llvm.fma` (one instruction on a machine
    with FMA, vectorised like a product; without FMA, a call of libm's fma on each lane).
    Unlike `contract`, which lets LLVM fuse a product when it likes, this is always fused: the
    error of a product a * b is then exactly `_fma(a, b, -(a * b))`."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _fma(typingctx, a, b, c):
        if not a == b == c == types.float64:
            return None

        def codegen(context, builder, sig, args):
            return builder.fma(*args)

        return types.float64(a, b, c), codegen

    return _fma


@_intrinsic
def _inline():
    """`_inline()`, first in a function: mark the LLVM function being compiled `alwaysinline`.

    Numba compiles each function once and links its LLVM IR into every caller, where LLVM's
    inliner decides: it leaves a call of expm1 or sin (too big for its threshold) in the loop,
    and the call keeps the loop scalar.  Numba's own `inline="always"` would compile the
    function again inside every caller; LLVM inlining the IR it has costs little."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _inline(typingctx):
        def codegen(context, builder, sig, args):
            builder.function.attributes.add("alwaysinline")
            return context.get_dummy_value()

        return types.none(), codegen

    return _inline


_LIBM = ("sin", "cos")
_WIDTHS = (2, 4, 8, 16)


def _define_libm(module):
    """Define, once per LLVM module, `jitgrad_vecmath_<f>(double)` for f in sin, cos, calling
    libm, each with masked vector variants `jitgrad_vecmath_<f>_m<N>(<N x double>, <N x i1>)`
    named in its "vector-function-abi-variant" attribute.  The loop vectoriser cannot widen a
    call of an unknown function, but it can call such a variant with the mask of the lanes whose
    condition holds; the variant does nothing more when the mask is all false.  Everything is
    linkonce_odr (the modules of several callers merge into one kernel) and the variants are in
    llvm.compiler.used, because no instruction refers to them until the vectoriser runs."""
    from llvmlite import ir

    f64, i32 = ir.DoubleType(), ir.IntType(32)
    scalar_type = ir.FunctionType(f64, [f64])
    variants = []
    for name in _LIBM:
        libm = module.globals.get(name) or ir.Function(module, scalar_type, name)
        scalar = ir.Function(module, scalar_type, f"jitgrad_vecmath_{name}")
        scalar.linkage = "linkonce_odr"
        for attribute in ("noinline", "nounwind", "readnone"):
            scalar.attributes.add(attribute)
        builder = ir.IRBuilder(scalar.append_basic_block())
        builder.ret(builder.call(libm, scalar.args))
        abi = []
        for width in _WIDTHS:
            vector, mask = ir.VectorType(f64, width), ir.VectorType(ir.IntType(1), width)
            variant = ir.Function(module, ir.FunctionType(vector, [vector, mask]),
                                  f"{scalar.name}_m{width}")
            variant.linkage = "linkonce_odr"
            variant.attributes.add("nounwind")
            x, m = variant.args
            entry, some, none = (variant.append_basic_block(b) for b in ("entry", "some", "none"))
            builder = ir.IRBuilder(entry)
            bits = builder.bitcast(m, ir.IntType(width))
            builder.cbranch(builder.icmp_unsigned("!=", bits, bits.type(0)), some, none)
            builder.position_at_end(none)
            builder.ret(x)
            builder.position_at_end(some)
            out = x
            for lane in range(width):
                value = builder.call(libm, [builder.extract_element(x, i32(lane))])
                out = builder.insert_element(out, value, i32(lane))
            builder.ret(out)
            variants.append(variant)
            abi.append(f"_ZGV_LLVM_M{width}v_{scalar.name}({variant.name})")
        # llvmlite knows no string attributes: added to its attribute set directly, it prints
        # as written.
        set.add(scalar.attributes, f'"vector-function-abi-variant"="{",".join(abi)}"')
    array = ir.ArrayType(ir.PointerType(), len(variants))
    used = ir.GlobalVariable(module, array, "llvm.compiler.used")
    used.linkage, used.section = "appending", "llvm.metadata"
    used.initializer = ir.Constant(array, variants)


@_intrinsic
def _libm():
    """`_libm(x, 0)` is libm's sin(x), `_libm(x, 1)` its cos(x) (the second argument a literal),
    through a function that LLVM can call from a vectorised loop (see `_define_libm`)."""
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _libm(typingctx, x, which):
        if x != types.float64 or not isinstance(which, types.IntegerLiteral):
            return None
        name = f"jitgrad_vecmath_{_LIBM[which.literal_value]}"

        def codegen(context, builder, sig, args):
            if name not in builder.module.globals:
                _define_libm(builder.module)
            return builder.call(builder.module.globals[name], [args[0]])

        return types.float64(x, which), codegen

    return _libm


# ------------------------------------------------------------------------------------------------
# Shared pieces
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def _horner(x, c):
    """c[0] + c[1] x + c[2] x**2 + ... (c a constant tuple: the loop unrolls into FMAs)."""
    acc = c[-1]
    for i in range(len(c) - 2, -1, -1):
        acc = acc * x + c[i]
    return acc


@_jit.njit(**_OPTIONS)
def _clamp(x, lo, hi):
    """x limited to [lo, hi], and a nan kept (what min and max give for a nan depends on the
    order of their arguments)."""
    x = lo if x < lo else x  # noqa: FURB136
    return hi if x > hi else x  # noqa: FURB136


@_jit.njit(**_OPTIONS)
def _pow2(k):
    """2.0**k for an int64 k in the normal range [-1022, 1023]."""
    return _float((k + 1023) << 52)


@_jit.njit(**_OPTIONS)
def _reduce_ln2(x):
    """k, r, rl with x = k ln 2 + r + rl, k the nearest integer to x / ln 2, abs(r) <= ln(2)/2
    and r + rl a double-double (x already clamped to about [-746, 710])."""
    t = x * _INV_LN2 + _SHIFT
    k = _bits(t) - _bits(_SHIFT)
    kf = t - _SHIFT
    hi = x - kf * _LN2_HI  # exact: Sterbenz, and kf * _LN2_HI is exact
    lo = kf * _LN2_LO
    r = hi - lo
    return k, r, (hi - r) - lo


# ------------------------------------------------------------------------------------------------
# exp and expm1
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def exp(x):
    """e**x, within 1 ulp (a denormal result is rounded once)."""
    _inline()
    x = float(x)  # an int or a float32 too
    # Clamped so that k fits the two-step scaling; a clamped x gives 0 or inf all the same.  A nan
    # passes both selects and makes the polynomial nan.
    x = _clamp(x, -746.0, 710.0)
    k, r, rl = _reduce_ln2(x)
    p = 1.0 + (r + (r * r * _horner(r, _EXP_Q) + rl))
    # 2**k as 2**(k//2) * 2**(k - k//2): both factors normal for k in [-1076, 1024], so a
    # result that overflows becomes inf and one that underflows is rounded once, by the last
    # product.
    half = k >> 1
    return p * _pow2(half) * _pow2(k - half)


@_jit.njit(**_OPTIONS)
def expm1(x):
    """e**x - 1, within 1 ulp, exact for tiny x; expm1(-0) = -0."""
    _inline()
    x = float(x)  # an int or a float32 too
    x = _clamp(x, -45.0, 710.0)  # below -45, e**x < 2**-64: the result is -1
    k, r, rl = _reduce_ln2(x)
    # e**x - 1 = f (s (1 + r + rl + q) - 1/f) with s = 2**k / f, f = 2 if k = 1024 (2**k would
    # overflow) else 1, q = r**2 _EXP_Q(r) ~ expm1(r) - r.  The big terms s - 1/f and s r are
    # summed with their rounding errors carried, so the result is rounded about once even where
    # they cancel (k = 1, r < 0).
    big = k > 1023
    f = 2.0 if big else 1.0
    one = 0.5 if big else 1.0
    s = _pow2(k - 1 if big else k)
    q = r * r * _horner(r, _EXP_Q)
    a = s - one  # two-sum: a + ea = s - one exactly
    sb = a - s
    ea = (s - (a - sb)) + (-one - sb)
    sr = s * r
    hi = a + sr  # fast two-sum: abs(a) >= abs(sr) when k != 0, and a = 0 when k = 0
    ehi = sr - (hi - a)
    res = f * (hi + (s * (q + rl + rl * r) + (ehi + ea)))
    return x if x == 0.0 else res  # -0 + 0 would be +0


# ------------------------------------------------------------------------------------------------
# log and log1p
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def _log_parts(u):
    """k, f with u = 2**k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for a positive finite u
    (denormals too)."""
    tiny = u < 2.2250738585072014e-308
    u = u * 18014398509481984.0 if tiny else u  # 2**54: a denormal made normal
    ix = _bits(u)
    # Offset so that the exponent field steps up at sqrt(1/2) times a power of two, not at 1.
    k = (ix - _bits(_SQRT_HALF)) >> 52
    m = _float(ix - (k << 52))  # in [sqrt(1/2), sqrt(2)), exact
    return k - (54 if tiny else 0), m - 1.0  # m - 1 exact: Sterbenz


@_jit.njit(**_OPTIONS)
def _log_kernel(k, f, c):
    """k ln 2 + log(1 + f) + c, for abs(f) < 0.42 and a small correction c (fdlibm's arrangement:
    log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2)), s = f / (2 + f), summed from the small end)."""
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * f * f
    rz = z * _horner(z, _LOG_R)
    kf = float(k)
    return kf * _LN2_HI - ((hfsq - (s * (hfsq + rz) + (kf * _LN2_LO + c))) - f)


@_jit.njit(**_OPTIONS)
def log(x):
    """The natural logarithm, within 1 ulp; log(0) = -inf, log(x < 0) = nan."""
    _inline()
    x = float(x)  # an int or a float32 too
    k, f = _log_parts(x)
    res = _log_kernel(k, f, 0.0)
    res = -_INF if x == 0.0 else res
    res = _NAN if x < 0.0 else res
    return res if x < _INF else x + x  # inf and nan stay themselves


@_jit.njit(**_OPTIONS)
def log1p(x):
    """log(1 + x), within 1 ulp; log1p(-0) = -0, log1p(-1) = -inf, log1p(x < -1) = nan."""
    _inline()
    x = float(x)  # an int or a float32 too
    u = 1.0 + x
    # u is 1 + x rounded; c = (1 + x - u) / u corrects the log of u to first order.  Each way
    # of computing 1 + x - u is exact on its side of u = 2.
    c = ((1.0 - (u - x)) if u >= 2.0 else (x - (u - 1.0))) / u
    k, f = _log_parts(u)
    res = _log_kernel(k, f, c)
    res = -_INF if x == -1.0 else res
    res = _NAN if x < -1.0 else res
    res = x if x == 0.0 else res
    return res if x < _INF else x + x


# ------------------------------------------------------------------------------------------------
# sin and cos
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def _reduce_pio2(x):
    """n mod 4, r, rl with x = n pi/2 + r + rl, n the nearest integer to x / (pi/2), r + rl a
    double-double, abs(r) <= pi/4; right to r's last bit for abs(x) < _TRIG_BOUND."""
    t = x * _TWO_OVER_PI + _SHIFT
    n = t - _SHIFT
    q = _bits(t) & 3  # the low bits of bits(_SHIFT) are 0
    a = x - n * _PIO2_1  # exact: Sterbenz (n >= 1) or n = 0, and n * _PIO2_1 is exact
    b = n * _PIO2_2  # exact, as is n * _PIO2_3
    hi = a - b  # two-sum of a and -b
    bb = hi - a
    lo = (a - (hi - bb)) - (b + bb)
    c = n * _PIO2_3
    hi2 = hi - c
    cc = hi2 - hi
    lo = lo + ((hi - (hi2 - cc)) - (c + cc)) - n * _PIO2_4
    r = hi2 + lo
    return q, r, lo - (r - hi2)


@_jit.njit(**_OPTIONS)
def _sin_cos_kernel(r, rl):
    """sin and cos of r + rl for abs(r) <= pi/4 (fdlibm's __kernel_sin and __kernel_cos)."""
    z = r * r
    hz = 0.5 * z
    s = r + ((rl - hz * rl) + r * z * _horner(z, _SIN_P))
    w = 1.0 - hz
    c = w + (((1.0 - w) - hz) + (z * z * _horner(z, _COS_C) - r * rl))
    return s, c


@_jit.njit(**_OPTIONS)
def sin(x):
    """The sine, within 1 ulp; sin(-0) = -0, sin(+-inf) = nan."""
    _inline()
    x = float(x)  # an int or a float32 too
    q, r, rl = _reduce_pio2(x)
    s, c = _sin_cos_kernel(r, rl)
    res = c if q & 1 else s
    res = -res if q & 2 else res
    res = x if x == 0.0 else res
    return _libm(x, 0) if abs(x) >= _TRIG_BOUND else res


@_jit.njit(**_OPTIONS)
def cos(x):
    """The cosine, within 1 ulp; cos(+-inf) = nan."""
    _inline()
    x = float(x)  # an int or a float32 too
    q, r, rl = _reduce_pio2(x)
    s, c = _sin_cos_kernel(r, rl)
    res = s if q & 1 else c
    res = -res if (q + 1) & 2 else res
    return _libm(x, 1) if abs(x) >= _TRIG_BOUND else res


# ------------------------------------------------------------------------------------------------
# tanh and sigmoid
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def tanh(x):
    """The hyperbolic tangent, within 1 ulp; tanh(-0) = -0."""
    _inline()
    x = float(x)  # an int or a float32 too
    a = abs(x)
    z = a * a
    # Small a: Lambert's continued fraction, tanh(a) = a - a z _TANH_S(z) / _TANH_Q(z); the
    # second term is below a/10, so its rounding errors count a tenth.
    near0 = a - a * z * (_horner(z, _TANH_S) / _horner(z, _TANH_Q))
    # Else 1 - 2 / (e**2a + 1), with e**2a + 1 = em + 2 as a two-sum d + err.  Beyond 22, tanh
    # rounds to 1 (and em stays finite, for the two-sum); a nan passes.
    em = expm1(44.0 if a > 22.0 else 2.0 * a)
    d = em + 2.0
    dd = d - em
    err = (em - (d - dd)) + (2.0 - dd)
    t = 2.0 / d
    t = 1.0 - (t - t * (err / d))  # 2 / (d + err), to first order in err / d
    return math.copysign(near0 if a < 0.55 else t, x)


@_jit.njit(**_OPTIONS)
def sigmoid(x):
    """The logistic function 1 / (1 + e**-x), within 1 ulp, without overflow for either sign."""
    _inline()
    x = float(x)  # an int or a float32 too
    e = exp(-abs(x))
    d = 1.0 + e  # fast two-sum: d + err = 1 + e exactly
    err = e - (d - 1.0)
    q = (1.0 if x >= 0.0 else e) / d
    return q - q * (err / d)  # num / (d + err), to first order in err / d


logistic = sigmoid


# ------------------------------------------------------------------------------------------------
# pow
# ------------------------------------------------------------------------------------------------


@_jit.njit(**_OPTIONS)
def _log_dd(ax):
    """hi, lo with hi + lo = log(ax) within 2**-67 of it (relative; measured 2**-67.4), for a
    positive finite ax (denormals too); abs(lo) below 2**-42 abs(hi), not rounded into it."""
    _inline()
    k, f = _log_parts(ax)
    # s = f / (2 + f) as a double-double s + sl: 2 + f = d + dl exactly (a fast two-sum), s the
    # quotient to about an ulp, sl = (f - s (d + dl)) / d, the residual f - s d by an FMA.
    d = 2.0 + f
    dl = (2.0 - d) + f
    inv = 1.0 / d
    s = f * inv
    sl = (_fma(-s, d, f) - s * dl) * inv
    # z + zl = (s + sl)**2, and P = 2/3 + 2/5 z + z**2 _POW_T(z) as ph + pl: the z**2 term is
    # below 2**-11 of P, so that only it is a plain double; the others are summed by fast
    # two-sums (2/3 > abs(b), abs(a) > abs(t)) with their errors kept
    z = s * s
    zl = _fma(s, s, -z) + 2.0 * s * sl
    z2 = z * z
    t = z2 * (_horner(z2, _POW_T_EVEN) + z * _horner(z2, _POW_T_ODD))
    a = z * _POW_C5_HI
    ae = _fma(z, _POW_C5_HI, -a)  # a + ae = z * _POW_C5_HI exactly
    b = a + t
    ph = _POW_C3_HI + b
    pl = ((b - (ph - _POW_C3_HI)) + (t - (b - a))) + (
        ae + (_POW_C3_LO + (z * _POW_C5_LO + zl * _POW_C5_HI)))
    # (s + sl)**3 = q + ql, and the odd terms' sum (s + sl)**3 P = th + tl
    q = s * z
    ql = _fma(s, z, -q) + (sl * z + s * zl)
    th = q * ph
    tl = _fma(q, ph, -th) + (q * pl + ql * ph)
    # k ln 2 + 2s + th, by fast two-sums (abs(k ln 2) >= ln 2 > abs(2s) unless k = 0, and th is
    # below 2**-6 of the sum), their errors kept with the small terms
    kf = float(k)
    kh = kf * _LN2_HI  # exact
    s2 = 2.0 * s
    h1 = kh + s2
    e1 = s2 - (h1 - kh)
    h2 = h1 + th
    e2 = th - (h2 - h1)
    return h2, (e1 + e2) + ((kf * _LN2_LO + 2.0 * sl) + tl)


@_jit.njit(**_OPTIONS)
def _exp_dd(hi, lo):
    """e**(hi + lo) for a double-double hi + lo (abs(lo) below 2**-42 abs(hi)), within about 0.6
    ulp: lo is added to the reduced argument, and 1 + r + r**2/2 summed exactly, so that the
    result is rounded about once (a denormal twice: to 53 bits, then to its own ulp)."""
    _inline()
    x = _clamp(hi, -746.0, 710.0)  # beyond, 0 or inf all the same; a nan passes
    lo = lo if x == hi else 0.0  # clamped (or nan): lo may be anything, inf or nan too
    t = x * _INV_LN2 + _SHIFT
    k = _bits(t) - _bits(_SHIFT)
    kf = t - _SHIFT
    h = x - kf * _LN2_HI  # exact: Sterbenz, and kf * _LN2_HI is exact
    c = lo - kf * _LN2_LO  # below 2**-31
    r = h + c  # a fast two-sum: exact when abs(h) >= abs(c), within 2**-84 when not
    rl = c - (r - h)
    # e**(r + rl) = e**r (1 + rl) = 1 + r + r**2/2 + r**3 C(r) + rl (1 + r), to 2**-57, with
    # 1 + r and r**2 exact (a fast two-sum and an FMA), so that only terms below 2**-7 of the
    # result are rounded before the last sum
    r2 = r * r
    r2e = _fma(r, r, -r2)
    cube = r * r2 * (_horner(r2, _EXP_C_EVEN) + r * _horner(r2, _EXP_C_ODD))
    one = 1.0 + r
    oe = (1.0 - one) + r
    p = one + (0.5 * r2 + (oe + (0.5 * r2e + (cube + (rl + rl * r)))))
    half = k >> 1  # 2**k in two normal factors, as in exp
    return p * _pow2(half) * _pow2(k - half)


@_jit.njit(**_OPTIONS)
def pow(x, y):  # noqa: A001 (numpy.power's name in math and C)
    """x**y, within 1 ulp (0.62 measured; see the module docstring), with C99's and NumPy's
    special cases: pow(x, +-0) = 1 and pow(1, y) = 1 even for a nan, pow(-1, +-inf) = 1, a
    negative finite x with a non-integer y gives nan, and an odd integer y keeps the sign of x
    (of a zero and of -inf too)."""
    _inline()
    x = float(x) * 1.0  # an int or a float32 too (whose float() is a float32 in Numba)
    y = float(y) * 1.0
    ax = abs(x)
    hi, lo = _log_dd(ax)  # nonsense for ax = 0, inf or nan
    hi = -_INF if ax == 0.0 else hi  # so that y hi is +-inf (and y = 0 gives nan, replaced below)
    hi = _INF if ax == _INF else hi
    ph = y * hi  # y log(ax) = ph + pl, the product's error by an FMA
    pl = _fma(y, hi, -ph) + y * lo
    res = _exp_dd(ph, pl)
    # y an integer, and odd?  Below 2**52, ay + 2**52 rounds ay to an integer, whose parity is the
    # last bit; from 2**52 every float is an integer (inf too, an even one), from 2**53 an even one.
    ay = abs(y)
    large = ay >= _TWO52
    r = ay if large else ay + _TWO52
    integer = large | (r - _TWO52 == ay)
    odd = integer & (ay < _TWO53) & ((_bits(r) & 1) == 1)
    res = -res if (_bits(x) < 0) & odd else res  # x negative, -0 and -inf too
    res = _NAN if (x < 0.0) & (x > -_INF) & (not integer) else res
    res = x + y if math.isnan(x) | math.isnan(y) else res
    return 1.0 if (x == 1.0) | (y == 0.0) | ((x == -1.0) & (ay == _INF)) else res
