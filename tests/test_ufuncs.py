"""jitgrad.numpy's elementwise functions beyond the core ones (jitgrad/numpy/_ufuncs.py): values
against NumPy (special values too), gradients against central differences over shapes and
broadcasting, autograd's conventions at kinks and ties, zero gradients of piecewise-constant
functions, dtypes, second order, errors.

Tests run under `jitgrad.execution("interpret")` (no compile), except those named
`test_compiled_*`, which compile every op at least once and compare with the interpreter.
Ids read `arctan2-3x1:4`, `sinc-0d`, ... (select with -k)."""

from __future__ import annotations

import warnings
import zlib

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_against_autograd, check_grads, check_second_order
except ImportError:
    from gradcheck import check_against_autograd, check_grads, check_second_order


@pytest.fixture(autouse=True)
def _mode(request):
    if request.node.name.startswith("test_compiled"):
        yield
    else:
        with jitgrad.execution("interpret"):
            yield


def sid(shape) -> str:
    return "0d" if shape == () else "x".join(map(str, shape))


def rand(shape, lo, hi, *key, signed=False):
    rng = numpy.random.default_rng(zlib.crc32(repr((shape, lo, hi, signed) + key).encode()))
    x = rng.uniform(lo, hi, shape)
    if signed:
        x = x * rng.choice([-1.0, 1.0], shape)
    return numpy.array(x, dtype=numpy.float64)


def weights(shape, *key):
    rng = numpy.random.default_rng(zlib.crc32(repr(("w", shape) + key).encode()))
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def weighted(fn, *args, key=()):
    w = weights(numpy.shape(fn(*args)), *key)
    return lambda *a: np.sum(fn(*a) * w)


# ------------------------------------------------------------------------------------------------
# Unary functions: name, function, domain (lo, hi), signed (+-[lo, hi])
# ------------------------------------------------------------------------------------------------

UNARY = [
    ("exp2", np.exp2, (-2.0, 2.0), False),
    ("log2", np.log2, (0.2, 3.0), False),
    ("log10", np.log10, (0.2, 3.0), False),
    ("arcsinh", np.arcsinh, (-2.0, 2.0), False),
    ("arccosh", np.arccosh, (1.1, 4.0), False),
    ("arctanh", np.arctanh, (-0.9, 0.9), False),
    ("cbrt", np.cbrt, (0.2, 3.0), True),
    ("sinc", np.sinc, (-2.3, 2.3), False),
    ("sinc-small", np.sinc, (1e-4, 0.1), True),
    ("deg2rad", np.deg2rad, (-90.0, 90.0), False),
    ("radians", np.radians, (-90.0, 90.0), False),
    ("rad2deg", lambda x: np.rad2deg(x) / 50.0, (-2.0, 2.0), False),
    ("degrees", lambda x: np.degrees(x) / 50.0, (-2.0, 2.0), False),
    ("positive", np.positive, (-2.0, 2.0), False),
    ("float_power", lambda x: np.float_power(x, 2.5), (0.2, 2.0), False),
    ("nan_to_num", lambda x: np.nan_to_num(x, nan=1.0), (-2.0, 2.0), False),
    ("clip", lambda x: np.clip(x, -0.5, 1.0), (0.1, 2.0), True),
    ("clip-kw", lambda x: np.clip(x, a_max=0.7) + np.clip(x, min=-0.3) + x.clip(None, 0.2),
     (0.05, 2.0), True),
    ("heaviside", lambda x: np.heaviside(x, 0.5) * x, (0.1, 2.0), True),
    ("copysign", lambda x: np.copysign(x, -1.0) + np.copysign(2.0, x), (0.1, 2.0), True),
]


@pytest.mark.parametrize("name,fn,domain,signed,shape", [
    pytest.param(name, fn, dom, signed, shape, id=f"{name}-{sid(shape)}")
    for name, fn, dom, signed in UNARY for shape in ((), (3, 2), (1, 5))
])
def test_unary(name, fn, domain, signed, shape):
    x = rand(shape, *domain, name, signed=signed)
    with numpy.errstate(all="ignore"):
        check_grads(weighted(fn, x, key=(name,)), x)


# The piecewise-constant ones: NumPy's values, exactly zero gradients (autograd's).
PIECEWISE = {
    "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "fix": np.fix, "rint": np.rint,
    "round": np.round, "around-1": lambda x: np.around(x, 1),
    "round-neg": lambda x: np.round(x * 100, -1), "round-method": lambda x: x.round(2),
    "floor_divide": lambda x: np.floor_divide(x, 0.3) + x // 0.7 + 2.0 // x,
    "sign": np.sign,
    "isnan": lambda x: np.where(np.isnan(x), 1.0, 2.0),
    "isinf": lambda x: np.where(np.isinf(x), 1.0, 2.0),
    "isfinite": lambda x: np.where(np.isfinite(x), 1.0, 2.0),
    "signbit": lambda x: np.where(np.signbit(x), 1.0, 2.0),
}


@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_piecewise_constant(name):
    fn = PIECEWISE[name]
    x = rand((3, 4), 0.05, 2.5, name, signed=True)
    w = weights((3, 4), name)
    value, g = jitgrad.value_and_grad(lambda x: np.sum(fn(x) * w))(x)
    assert value == pytest.approx(numpy.sum(fn(x) * w), rel=1e-13)
    assert numpy.array_equal(g, numpy.zeros_like(x))


# ------------------------------------------------------------------------------------------------
# Binary functions: broadcasting and both argnums
# ------------------------------------------------------------------------------------------------

BINARY = [  # name, function, domain of a, domain of b (signed if the flag is set)
    ("arctan2", np.arctan2, (-2.0, 2.0, False), (0.3, 2.0, True)),
    ("hypot", np.hypot, (0.2, 2.0, True), (0.2, 2.0, True)),
    ("logaddexp", np.logaddexp, (-2.0, 2.0, False), (-2.0, 2.0, False)),
    ("logaddexp2", np.logaddexp2, (-2.0, 2.0, False), (-2.0, 2.0, False)),
    ("mod", np.mod, (-0.9, 0.9, False), (0.7, 1.9, False)),
    ("mod-neg", np.mod, (0.1, 2.0, True), (0.3, 2.0, True)),
    ("op-mod", lambda a, b: a % b, (0.1, 2.0, True), (0.3, 2.0, True)),
    ("remainder", np.remainder, (-0.9, 0.9, False), (0.7, 1.9, False)),
    ("fmod", np.fmod, (0.1, 2.0, True), (0.3, 2.0, True)),
    ("fmax", np.fmax, (-2.0, 2.0, False), (-2.0, 2.0, False)),
    ("fmin", np.fmin, (-2.0, 2.0, False), (-2.0, 2.0, False)),
    ("copysign", np.copysign, (0.2, 2.0, True), (0.2, 2.0, True)),
    ("heaviside", lambda a, b: np.heaviside(a, b) * b, (0.2, 2.0, True), (0.2, 2.0, False)),
    ("float_power", np.float_power, (0.3, 2.0, False), (-1.5, 2.0, False)),
    ("clip", lambda a, b: np.clip(a, b, b + 1.0), (-2.0, 2.0, False), (-1.0, 0.5, False)),
    ("true_divide", np.true_divide, (-2.0, 2.0, False), (0.5, 2.0, True)),
]
LAYOUTS = [((3, 4), (3, 4), (0, 1)), ((3, 1), (4,), (0, 1)), ((), (2, 3), 1), ((2, 3), (), 0)]


def _operands(name, sa, sb, da, db):
    for attempt in range(100):
        a = rand(sa, da[0], da[1], name, "a", attempt, signed=da[2])
        b = rand(sb, db[0], db[1], name, "b", attempt, signed=db[2])
        # Away from kinks: ties of fmax/fmin/clip, jumps of mod/fmod.
        ok = numpy.min(numpy.abs(numpy.subtract(a, b))) > 0.05
        if name.startswith(("mod", "op-mod", "remainder", "fmod")):
            r = numpy.abs(numpy.divide(a, b))
            ok = numpy.min(numpy.abs(r - numpy.round(r))) > 0.05
        if name == "clip":
            ok = numpy.min(numpy.minimum(numpy.abs(a - b), numpy.abs(a - b - 1.0))) > 0.05
        if ok:
            return a, b
    raise RuntimeError("no well-separated operands")


@pytest.mark.parametrize("name,fn,da,db,sa,sb,argnum", [
    pytest.param(name, fn, da, db, sa, sb, argnum, id=f"{name}-{sid(sa)}:{sid(sb)}")
    for name, fn, da, db in BINARY for sa, sb, argnum in LAYOUTS
])
def test_binary(name, fn, da, db, sa, sb, argnum):
    a, b = _operands(name, sa, sb, da, db)
    check_grads(weighted(fn, a, b, key=(name,)), a, b, argnum=argnum)


# ------------------------------------------------------------------------------------------------
# autograd's conventions where finite differences are invalid: ties, kinks, bounds, infinities
# ------------------------------------------------------------------------------------------------

AT_KINKS = {
    "fmax-ties": (lambda np, x: np.sum(np.fmax(x, 0.5) * numpy.arange(5.0))
                  + np.sum(np.fmax(x, x[::-1]))),
    "fmin-ties": lambda np, x: np.sum(np.fmin(x, 0.5) * numpy.arange(5.0)),
    "clip-bounds": lambda np, x: np.sum(np.clip(x, 0.0, 0.5) * numpy.arange(5.0)),
    "abs-0": lambda np, x: np.sum(np.abs(x - 0.5)),
    "mod-divisor": lambda np, x: np.sum(np.mod(x[0], x[2:]) * numpy.arange(3.0)),
    "sign-0": lambda np, x: np.sum(np.sign(x - 0.5) * x),
}


@pytest.mark.parametrize("name", sorted(AT_KINKS))
def test_against_autograd_at_kinks(name):
    pytest.importorskip("autograd")
    x = numpy.array([0.5, 0.0, 1.5, -0.5, 0.5])
    with numpy.errstate(all="ignore"):
        check_against_autograd(lambda np: lambda x: AT_KINKS[name](np, x), x)


def test_nan_to_num_gradient_at_infinities():
    x = numpy.array([numpy.inf, 1.0, numpy.nan, -2.0, -numpy.inf])
    w = weights((5,), "nan_to_num")
    g = jitgrad.grad(lambda x: np.sum(np.nan_to_num(x, posinf=3.0) * w))(x)
    numpy.testing.assert_array_equal(g, numpy.where(numpy.isfinite(x), w, 0.0))


def test_sinc_at_zero():
    x = numpy.array([0.0, 1e-9, -1e-5, 0.3, 2.0])
    g = jitgrad.elementwise_grad(np.sinc)(x)
    y = numpy.pi * x[3:]
    numpy.testing.assert_allclose(g[:3], -numpy.pi ** 2 * x[:3] / 3, atol=1e-20, rtol=1e-9)
    numpy.testing.assert_allclose(
        g[3:], numpy.pi * (y * numpy.cos(y) - numpy.sin(y)) / y ** 2, rtol=1e-13)
    h = jitgrad.elementwise_grad(jitgrad.elementwise_grad(np.sinc))(x[:1])
    numpy.testing.assert_allclose(h, [-numpy.pi ** 2 / 3], rtol=1e-13)


@pytest.mark.parametrize("name,fn,lo,hi", [
    ("sinc", np.sinc, -0.4, 0.4), ("arctan2", lambda x: np.arctan2(x, 1.0 - x), 0.2, 2.0),
    ("logaddexp", lambda x: np.logaddexp(x, x * x), -1.0, 1.0),
    ("hypot", lambda x: np.hypot(x, 0.5), 0.2, 2.0), ("arcsinh", np.arcsinh, -2.0, 2.0),
    ("arccosh", np.arccosh, 1.2, 3.0), ("log2", lambda x: np.log2(x) * np.exp2(x), 0.3, 2.0),
    ("clip", lambda x: np.clip(x, 0.4, 1.5) ** 2, 0.1, 2.0),
])
def test_second_order(name, fn, lo, hi):
    x = rand((4,), lo, hi, name, "second")
    if name == "clip":
        x = numpy.array([0.1, 0.9, 1.3, 2.0])
    w = weights((4,), name)  # made outside the traced function (see the report on fresh arrays)
    check_second_order(lambda x: np.sum(fn(x) * w), x)


# ------------------------------------------------------------------------------------------------
# Values against NumPy, special values and integers included
# ------------------------------------------------------------------------------------------------

SPECIAL = numpy.array([-numpy.inf, -3.5, -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.5,
                       numpy.inf, numpy.nan])
A, B = numpy.meshgrid(SPECIAL, SPECIAL, indexing="ij")
INTS = numpy.array([-7, -3, -2, -1, 0, 1, 2, 3, 7])
IA, IB = numpy.meshgrid(INTS, INTS, indexing="ij")

VALUES = {  # name: function of (a, b), evaluated at every pair of SPECIAL values and of INTS
    "remainder": lambda a, b: np.remainder(a, b), "op-mod": lambda a, b: a % b,
    "fmod": lambda a, b: np.fmod(a, b), "floor_divide": lambda a, b: a // b,
    "fmax": np.fmax, "fmin": np.fmin, "copysign": np.copysign, "heaviside": np.heaviside,
    "arctan2": np.arctan2, "hypot": np.hypot, "logaddexp": np.logaddexp,
    "logaddexp2": np.logaddexp2, "clip": lambda a, b: np.clip(a, b, 2.0),
    "float_power": np.float_power,
    "unary": lambda a, b: (np.floor(a) + np.ceil(b) + 2 * np.trunc(a) + 3 * np.rint(b)
                           + np.round(a, 1) + np.nan_to_num(a) + np.sinc(b)
                           + np.cbrt(a) + np.exp2(b) + np.log2(a) + np.log10(b)
                           + np.arcsinh(a) + np.arccosh(b) + np.arctanh(a)),
}


def _same(got, expected):
    got, expected = numpy.asarray(got), numpy.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    known = ~numpy.isnan(expected)  # (the sign of a NaN is not NumPy's contract)
    numpy.testing.assert_array_equal(numpy.signbit(got)[known], numpy.signbit(expected)[known])
    numpy.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def _compiled_value(fn, *operands):
    """fn(*operands) computed by a compiled kernel: the operands are made from a traced
    argument (so nothing is folded), and the result comes back through make_vjp."""
    def traced(t):
        ops = [o - (t * 0).astype(o.dtype) for o in operands]  # keeps -0.0
        return fn(*ops)

    t = numpy.zeros(operands[0].shape)
    _, ans = jitgrad.make_vjp(traced)(t)
    return ans


@pytest.mark.parametrize("name", sorted(VALUES))
def test_compiled_values(name):
    fn = VALUES[name]
    with warnings.catch_warnings(), numpy.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = fn(A, B)
        got = _compiled_value(fn, A, B)
        _same(got, expected)
        with jitgrad.execution("interpret"):
            _same(_compiled_value(fn, A, B), expected)
        if name not in ("unary", "arctan2", "hypot", "logaddexp", "logaddexp2", "float_power",
                        "heaviside", "copysign"):
            _same(_compiled_value(fn, IA, IB), fn(IA, IB))


DTYPE_CASES = {
    "float32": lambda x: [np.exp2(x), np.log10(x), np.arctanh(x * 0.5), np.sinc(x),
                          np.floor(x), np.round(x, 1), np.mod(x, 0.3), np.fmod(x, 2),
                          np.arctan2(x, 2), np.hypot(x, x), np.logaddexp(x, 1), np.fmax(x, 0.5),
                          np.clip(x, 0, 0.5), np.nan_to_num(x), np.deg2rad(x), np.cbrt(x),
                          np.copysign(x, -1), np.heaviside(x, 0.5), np.float_power(x, 2)],
    "int64": lambda x: [np.floor(x), np.ceil(x), np.trunc(x), np.fix(x), np.rint(x),
                        np.round(x), np.round(x, -1), np.mod(x, 3), x // 2, np.fmod(x, 3),
                        np.fmax(x, 2), np.clip(x, 1, 3), np.clip(x, None, 2), np.exp2(x),
                        np.deg2rad(x), np.nan_to_num(x), np.isnan(x), np.signbit(x),
                        np.positive(x), np.arctan2(x, 2), np.float_power(x, 2)],
}


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
def test_compiled_result_dtypes(name):
    # jitgrad's dtypes are NumPy's, compiled and interpreted; the values agree.
    x = numpy.array([0.25, 1.5, 2.75, -3.5]).astype(name)
    with warnings.catch_warnings(), numpy.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = DTYPE_CASES[name](x)
        for mode in ("compiled", "interpret"):
            def f(t):
                outs = DTYPE_CASES[name]((t * 0).astype(x.dtype) + x)
                for out, ref in zip(outs, expected):
                    assert out.dtype == ref.dtype, (mode, out.dtype, ref.dtype)
                return np.sum(t)

            if mode == "compiled":
                jitgrad.grad(f)(numpy.zeros(4))
            else:
                with jitgrad.execution("interpret"):
                    jitgrad.grad(f)(numpy.zeros(4))
        tol = 1e-6 if name == "float32" else 1e-14
        for k, ref in enumerate(expected):
            got = _compiled_value(lambda v: DTYPE_CASES[name](v)[k], x)
            assert got.dtype == ref.dtype
            numpy.testing.assert_allclose(got, ref, rtol=tol, err_msg=f"output {k}")


def test_compiled_gradients():
    # Every differentiable op's gradient compiled, against the interpreter.
    a = rand((3, 4), 0.2, 0.9, "compiled")
    b = rand((4,), 0.3, 1.5, "compiled", "b")

    def f(a, b):
        terms = [np.exp2(a), np.log2(a), np.log10(b), np.arcsinh(a), np.arccosh(b + 1.0),
                 np.arctanh(a - 0.5), np.cbrt(a), np.sinc(a), np.arctan2(a, b), np.hypot(a, b),
                 np.logaddexp(a, b), np.logaddexp2(b, a), np.mod(a, b), np.fmod(a, b),
                 np.fmax(a, b), np.fmin(a, b), np.copysign(a, -b), np.heaviside(a - 0.5, b),
                 np.clip(a, 0.4, b), np.nan_to_num(np.log(a - 0.3)), np.float_power(a, b)]
        return sum(np.sum(t * w) for t, w in zip(terms, ws))

    ws = [weights((3, 4), k) for k in range(21)]

    with numpy.errstate(all="ignore"):
        got = jitgrad.value_and_grad(f, (0, 1))(a, b)
        with jitgrad.execution("interpret"):
            expected = jitgrad.value_and_grad(f, (0, 1))(a, b)
    assert got[0] == pytest.approx(expected[0], rel=1e-13)
    for g, e in zip(got[1], expected[1]):
        numpy.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def test_compiled_second_order():
    x = numpy.array([0.0, 0.3, -0.7, 1.9])
    f = lambda x: np.sum(np.sinc(x) + np.arctan2(x, 2.0) * np.logaddexp(x, 0.5))  # noqa: E731
    h = jitgrad.hessian(f)(x)
    with jitgrad.execution("interpret"):
        expected = jitgrad.hessian(f)(x)
    numpy.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------
# Plain arrays, dispatch from NumPy, errors
# ------------------------------------------------------------------------------------------------

PLAIN = ["exp2", "log2", "log10", "arcsinh", "arctanh", "cbrt", "sinc", "deg2rad", "radians",
         "rad2deg", "degrees", "floor", "ceil", "trunc", "fix", "rint", "round", "around",
         "nan_to_num", "isnan", "isinf", "isfinite", "signbit", "positive"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_plain_arrays():
    x = numpy.array([-1.7, -0.5, 0.0, 0.4, 0.9])
    for name in PLAIN:
        numpy.testing.assert_array_equal(getattr(np, name)(x), getattr(numpy, name)(x),
                                         err_msg=name)
    y = numpy.array([0.3, -2.0, 1.5, 0.7, -0.2])
    for name in ["arctan2", "hypot", "logaddexp", "logaddexp2", "mod", "remainder", "fmod",
                 "floor_divide", "fmax", "fmin", "copysign", "heaviside", "float_power"]:
        with numpy.errstate(all="ignore"):
            numpy.testing.assert_array_equal(getattr(np, name)(x, y), getattr(numpy, name)(x, y),
                                             err_msg=name)
    numpy.testing.assert_array_equal(np.clip(x, -0.5, None), numpy.clip(x, -0.5, None))
    numpy.testing.assert_array_equal(np.clip(x, max=0.2), numpy.clip(x, max=0.2))
    numpy.testing.assert_array_equal(np.round(x, 1), numpy.round(x, 1))


def test_numpy_functions_dispatch_on_traced_values():
    x = rand((5,), 0.2, 0.9, "dispatch")

    def f(x):
        return numpy.sum(numpy.exp2(x) + numpy.remainder(x, 0.3) + numpy.clip(x, 0.3, 0.8)
                         + numpy.round(x, 1) + numpy.arctan2(x, 1.0) + numpy.fmax(x, 0.5))

    check_grads(f, x)


def test_errors():
    z = numpy.array([1.0 + 1.0j, 2.0])
    with pytest.raises(jitgrad.TracingError, match=r"np\.arctan2: complex"):
        jitgrad.grad(lambda x: np.sum(np.abs(np.arctan2(x * z, 1.0))))(numpy.ones(2))
    with pytest.raises(jitgrad.TracingError, match=r"np\.round: out="):
        jitgrad.grad(lambda x: np.sum(np.round(x, out=x)))(numpy.ones(2))
    with pytest.raises(jitgrad.TracingError, match=r"np\.sinc's third derivative"):
        d2 = jitgrad.elementwise_grad(jitgrad.elementwise_grad(np.sinc))
        jitgrad.grad(lambda x: np.sum(d2(x)))(numpy.ones(2))
