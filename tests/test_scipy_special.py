"""jitgrad.scipy.special: values against SciPy, gradients against finite differences (and the
derivatives autograd uses), second order for a sample.  Most tests run interpreted (no Numba
compile); the `compiled` ones run every op through generated kernels and compare them with the
interpreter.  Ids read `gammaln-3x4`, `jn-order2`, `logsumexp-axis1-keep-b`."""

from __future__ import annotations

import zlib

import numpy
import pytest
import scipy.special as sp

import jitgrad
import jitgrad.numpy as np
import jitgrad.scipy.special as special
from jitgrad.errors import TracingError

try:
    from .gradcheck import check_grads, check_second_order
except ImportError:
    from gradcheck import check_grads, check_second_order


pytestmark = pytest.mark.usefixtures("interpret_unless_compiled")


def _rng(*key):
    return numpy.random.default_rng(zlib.crc32(repr(key).encode()))


def rand(shape, lo, hi, *key):
    return _rng(shape, lo, hi, *key).uniform(lo, hi, shape)


def weights(shape, *key):
    rng = _rng("w", shape, *key)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def weighted(fn, *args, key=()):
    w = weights(numpy.shape(fn(*args)), *key)
    return lambda *a: np.sum(fn(*a) * w)


def sid(shape):
    return "x".join(map(str, shape)) if shape else "0d"


# name, domain
UNARY = [
    ("gamma", (0.3, 3.0)), ("gammaln", (0.3, 4.0)), ("psi", (0.3, 3.0)),
    ("digamma", (0.3, 3.0)), ("rgamma", (0.3, 3.0)), ("gammasgn", (0.3, 3.0)),
    ("erf", (-2.0, 2.0)), ("erfc", (-2.0, 2.0)), ("erfinv", (-0.9, 0.9)),
    ("erfcinv", (0.1, 1.9)), ("ndtr", (-3.0, 3.0)), ("log_ndtr", (-5.0, 3.0)),
    ("ndtri", (0.05, 0.95)), ("expit", (-4.0, 5.0)), ("logit", (0.1, 0.9)),
    ("j0", (0.2, 20.0)), ("j1", (0.2, 20.0)), ("y0", (0.2, 20.0)), ("y1", (0.2, 20.0)),
    ("i0", (0.2, 10.0)), ("i1", (0.2, 10.0)),
]
SECOND = {"gammaln", "psi", "erf", "expit", "erfinv", "j1", "i0", "logit"}


@pytest.mark.parametrize("name,domain", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("shape", [(3, 4), ()], ids=sid)
def test_unary(name, domain, shape):
    fn, ref = getattr(special, name), getattr(sp, name)
    x = rand(shape, *domain, name)
    numpy.testing.assert_allclose(fn(x), ref(x), rtol=1e-14)
    traced = jitgrad.value_and_grad(lambda a: np.sum(fn(a)))(x)[0]
    numpy.testing.assert_allclose(traced, numpy.sum(ref(x)), rtol=1e-13)
    check_grads(weighted(fn, x, key=name), x)
    if name in SECOND and shape:
        check_second_order(weighted(fn, x, key=name), x)


def test_gammasgn_has_zero_gradient():
    x = numpy.array([-1.5, -0.5, 0.5, 2.5])
    numpy.testing.assert_array_equal(jitgrad.grad(lambda a: np.sum(special.gammasgn(a)))(x), 0.0)


def test_float32_keeps_its_dtype():
    x = numpy.linspace(0.5, 2.0, 4, dtype=numpy.float32)
    out = special.gammaln(x)
    assert out.dtype == numpy.float32
    g = jitgrad.grad(lambda a: np.sum(special.gammaln(a)))(x)
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(g, sp.psi(x.astype(float)), rtol=1e-5)


# name, order, domain: functions of an order (no gradient) and x
ORDERED = [
    ("polygamma", 0, (0.3, 3.0)), ("polygamma", 1, (0.3, 3.0)), ("polygamma", 3, (0.3, 3.0)),
    ("jn", 2, (0.3, 10.0)), ("yn", 2, (0.5, 10.0)), ("iv", 2, (0.3, 5.0)),
    ("iv", 1.5, (0.3, 5.0)), ("ive", 2, (0.3, 5.0)), ("ive", 0.5, (0.3, 5.0)),
]


@pytest.mark.parametrize("name,order,domain", ORDERED,
                         ids=[f"{n}-order{o}" for n, o, _ in ORDERED])
def test_ordered(name, order, domain):
    fn, ref = getattr(special, name), getattr(sp, name)
    x = rand((3, 4), *domain, name, order)
    numpy.testing.assert_allclose(fn(order, x), ref(order, x), rtol=1e-13)
    check_grads(weighted(lambda a: fn(order, a), x), x)
    if name in ("polygamma", "iv") and order in (1, 2):
        check_second_order(weighted(lambda a: fn(order, a), x), x)


def test_order_array_broadcasts():
    n = numpy.array([[0.0], [1.0], [2.0]])
    x = rand((4,), 0.5, 3.0, "pg")
    numpy.testing.assert_allclose(special.polygamma(n, x), sp.polygamma(n, x), rtol=1e-13)
    g = jitgrad.grad(lambda a: np.sum(special.polygamma(n, a)))(x)
    numpy.testing.assert_allclose(g, numpy.sum(sp.polygamma(n + 1, x), axis=0), rtol=1e-12)


def test_polygamma_matches_scipy_over_a_range():
    x = numpy.concatenate([numpy.geomspace(1e-3, 1e5, 300), -numpy.linspace(0.05, 6.3, 40)])
    for n in range(6):
        ours, ref = special.polygamma(n, x), sp.polygamma(n, x)
        numpy.testing.assert_allclose(ours, ref, rtol=1e-13, err_msg=f"n={n}")
        traced = jitgrad.value_and_grad(lambda a: np.sum(special.polygamma(n, a)))(x[:300])[0]
        numpy.testing.assert_allclose(traced, numpy.sum(ref[:300]), rtol=1e-13)


# name, argnums, domains, shapes (broadcast)
BINARY = [
    ("beta", (0, 1), [(1.1, 3.0), (1.1, 3.0)]),
    ("betaln", (0, 1), [(1.1, 3.0), (1.1, 3.0)]),
    ("xlogy", (0, 1), [(-2.0, 2.0), (0.2, 3.0)]),
    ("xlog1py", (0, 1), [(-2.0, 2.0), (-0.5, 3.0)]),
    ("gammainc", (1,), [(0.5, 3.0), (0.2, 4.0)]),
    ("gammaincc", (1,), [(0.5, 3.0), (0.2, 4.0)]),
]


@pytest.mark.parametrize("name,argnums,domains", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1), (4,))], ids=["3x4", "3x1:4"])
def test_binary(name, argnums, domains, shapes):
    fn, ref = getattr(special, name), getattr(sp, name)
    a, b = (rand(s, *d, name, i) for i, (s, d) in enumerate(zip(shapes, domains)))
    numpy.testing.assert_allclose(fn(a, b), ref(a, b), rtol=1e-13)
    check_grads(weighted(fn, a, b), a, b, argnum=argnums)
    if name == "beta" and shapes[0] == (3, 4):
        check_second_order(weighted(fn, a, b), a, b, argnum=1)


def test_betainc():
    a, b, x = rand((4,), 1.1, 3.0, "a"), rand((3, 1), 1.1, 3.0, "b"), rand((4,), 0.05, 0.95, "x")
    numpy.testing.assert_allclose(special.betainc(a, b, x), sp.betainc(a, b, x), rtol=1e-13)
    check_grads(weighted(special.betainc, a, b, x), a, b, x, argnum=2)


@pytest.mark.parametrize("name,argnum", [("gammainc", 0), ("gammaincc", 0), ("betainc", 1)])
def test_incomplete_functions_say_which_argument_has_no_gradient(name, argnum):
    args = [numpy.array([1.5, 2.0]), numpy.array([0.5, 0.7])]
    if name == "betainc":
        args.insert(0, numpy.array([2.0, 3.0]))
    fn = getattr(special, name)
    with pytest.raises(TracingError, match=f"cannot differentiate scipy.special.{name}"):
        jitgrad.grad(lambda *a: np.sum(fn(*a)), argnum)(*args)


@pytest.mark.parametrize("shape,d", [((), 1), ((), 3), ((2, 3), 2)],
                         ids=["0d-d1", "0d-d3", "2x3-d2"])
def test_multigammaln(shape, d):
    a = rand(shape, 4.0, 5.0, "mg", d)
    numpy.testing.assert_allclose(
        jitgrad.value_and_grad(lambda x: np.sum(special.multigammaln(x, d)))(a)[0],
        numpy.sum(sp.multigammaln(a, d)), rtol=1e-13)
    check_grads(lambda x: np.sum(special.multigammaln(x, d) * 1.3), a)


# ------------------------------------------------------------------------------------------------
# logsumexp
# ------------------------------------------------------------------------------------------------

LSE = [  # shape, axis, keepdims, with b
    ((4,), None, False, False), ((1,), 0, True, False), ((3, 4), None, True, False),
    ((3, 4), 0, False, False), ((3, 4), 1, True, False), ((4, 5, 6), (0, 2), False, False),
    ((4, 5, 6), -1, True, False), ((4,), 0, False, True), ((3, 4), 1, True, True),
    ((2, 3, 4), None, False, True), ((), None, False, False),
]


def _lse_id(case):
    shape, axis, keep, b = case
    ax = "none" if axis is None else "_".join(map(str, numpy.atleast_1d(axis)))
    return f"{sid(shape)}-axis{ax}" + ("-keep" if keep else "") + ("-b" if b else "")


@pytest.mark.parametrize("case", LSE, ids=[_lse_id(c) for c in LSE])
def test_logsumexp(case):
    shape, axis, keepdims, with_b = case
    x = rand(shape, -3.0, 3.0, "lse", case)
    b = numpy.exp(rand(shape, -1.0, 1.0, "b", case)) if with_b else None
    expected = sp.logsumexp(x, axis=axis, b=b, keepdims=keepdims)

    def f(a):
        return special.logsumexp(a, axis=axis, b=b, keepdims=keepdims)

    numpy.testing.assert_allclose(f(x), expected, rtol=1e-14)
    loss = weighted(f, x)
    value = jitgrad.value_and_grad(loss)(x)[0]
    numpy.testing.assert_allclose(value, loss(x), rtol=1e-13)
    check_grads(loss, x)
    if with_b:
        check_grads(lambda bb: np.sum(special.logsumexp(x, axis=axis, b=bb) ** 2), b)


def test_logsumexp_second_order():
    x = rand((1, 5), -1.0, 1.0, "lse2")

    def f(a):
        return np.sum(special.logsumexp(a, axis=1, keepdims=True))

    check_grads(lambda a: np.sum(jitgrad.grad(f)(a) * numpy.arange(1.0, 6.0)), x)
    check_second_order(lambda a: np.sum(special.logsumexp(a, axis=0) * numpy.array([1.0, -2.0])),
                       rand((3, 2), -1.0, 1.0, "lse3"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_logsumexp_large_values_and_infinities():
    big = numpy.array([1000.0, 1001.0, 999.0])
    numpy.testing.assert_allclose(
        jitgrad.value_and_grad(lambda a: special.logsumexp(a))(big)[0], sp.logsumexp(big))
    g = jitgrad.grad(lambda a: special.logsumexp(a))(big)
    numpy.testing.assert_allclose(g, numpy.exp(big - sp.logsumexp(big)), rtol=1e-12)
    # -inf entries get zero gradient; an all -inf row gives -inf; +inf gives inf.
    x = numpy.array([[0.5, -numpy.inf, 1.0], [-numpy.inf] * 3, [numpy.inf, 0.0, 1.0]])

    def rows(a):
        return special.logsumexp(a, axis=1)

    ref = sp.logsumexp(x, axis=1)
    out = jitgrad.value_and_grad(lambda a: rows(a)[0])(x)
    numpy.testing.assert_allclose(out[0], ref[0])
    numpy.testing.assert_allclose(out[1][0], numpy.exp(x[0] - ref[0]))
    # Rows whose value is infinite get NaN gradients even with a zero cotangent, as in autograd.
    import autograd
    import autograd.scipy.special as asp
    with numpy.errstate(invalid="ignore", divide="ignore"):
        ref_grad = autograd.grad(lambda a: asp.logsumexp(a, axis=1)[0])(x)
    numpy.testing.assert_allclose(out[1], ref_grad, rtol=1e-14)
    assert jitgrad.value_and_grad(lambda a: rows(a)[1])(x)[0] == -numpy.inf
    assert jitgrad.value_and_grad(lambda a: rows(a)[2])(x)[0] == numpy.inf


def test_logsumexp_b_zero_and_sign():
    x = numpy.array([[1.0, 2.0, 3.0], [0.5, 0.1, -0.2]])
    b = numpy.array([[1.0, -2.0, 0.0], [1.0, 1.0, 1.0]])
    ref, ref_sign = sp.logsumexp(x, axis=1, b=b, return_sign=True)

    def f(a):
        out, sign = special.logsumexp(a, axis=1, b=b, return_sign=True)
        return np.sum(out * sign)

    value = jitgrad.value_and_grad(f)(x)[0]
    numpy.testing.assert_allclose(value, numpy.sum(ref * ref_sign))
    check_grads(f, x)
    # b == 0 masks an entry out of the shift: a huge masked value does not matter.
    y = numpy.array([1.0, 2000.0])
    numpy.testing.assert_allclose(
        jitgrad.value_and_grad(lambda a: special.logsumexp(a, b=numpy.array([1.0, 0.0])))(y)[0],
        1.0)


def test_expit_tails_and_nothing_modified():
    x = numpy.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    keep = x.copy()
    v, g = jitgrad.value_and_grad(lambda a: np.sum(special.expit(a)))(x)
    numpy.testing.assert_array_equal(x, keep)
    numpy.testing.assert_allclose(g, sp.expit(x) * (1 - sp.expit(x)), rtol=1e-14)
    assert numpy.all(numpy.isfinite(g))


def test_unsupported_name_is_scipys_on_plain_arrays_and_clear_on_traced():
    assert special.zetac(2.0) == sp.zetac(2.0)
    with pytest.raises(TracingError, match="scipy.special.zetac is not supported"):
        jitgrad.grad(lambda a: np.sum(special.zetac(a)))(numpy.array([2.0, 3.0]))


# ------------------------------------------------------------------------------------------------
# Compiled: every op through generated kernels, compared with the interpreter
# ------------------------------------------------------------------------------------------------


_UNARY_W = {name: weights((4,), name) for name, _ in UNARY}


def _all_unary(d):
    total = 0.0
    for name, _ in UNARY:
        total = total + np.sum(getattr(special, name)(d[name]) * _UNARY_W[name])
    return total


def _all_binary(d):
    total = np.sum(special.polygamma(2, d["pg"]) * 0.7) + np.sum(special.jn(2, d["jn"]))
    total = total + np.sum(special.yn(1, d["yn"])) + np.sum(special.iv(1.5, d["iv"]))
    total = total + np.sum(special.ive(2, d["ive"])) + np.sum(special.beta(d["a"], d["b"]))
    total = total + np.sum(special.betaln(d["b"], d["a"])) + np.sum(special.xlogy(d["a"], d["b"]))
    total = total + np.sum(special.xlog1py(d["b"], d["a"]))
    total = total + np.sum(special.gammainc(1.5, d["x"]) - special.gammaincc(2.5, d["x"]) * 2.0)
    total = total + np.sum(special.betainc(2.0, 3.0, d["u"]))
    return total + np.sum(special.multigammaln(d["m"], 3))


def _compare(loss, arg):
    value, grad = jitgrad.value_and_grad(loss)(arg)
    with jitgrad.execution("interpret"):
        ref_value, ref_grad = jitgrad.value_and_grad(loss)(arg)
    numpy.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for k in arg:
        numpy.testing.assert_allclose(grad[k], ref_grad[k], rtol=1e-11, atol=1e-14, err_msg=k)
    check_grads(loss, arg)


def test_compiled_unary():
    _compare(_all_unary, {name: rand((4,), *domain, "c", name) for name, domain in UNARY})


def test_compiled_binary():
    arg = {"pg": rand((4,), 0.5, 3.0, "pg"), "jn": rand((4,), 0.5, 9.0, "jn"),
           "yn": rand((4,), 0.5, 9.0, "yn"), "iv": rand((4,), 0.5, 4.0, "iv"),
           "ive": rand((4,), 0.5, 4.0, "ive"), "a": rand((3, 4), 1.1, 3.0, "a"),
           "b": rand((4,), 1.1, 3.0, "b"), "x": rand((4,), 0.3, 3.0, "x"),
           "u": rand((4,), 0.1, 0.9, "u"), "m": rand((2,), 4.0, 5.0, "m")}
    _compare(_all_binary, arg)


def test_compiled_logsumexp_and_second_order():
    x = rand((3, 4), -2.0, 2.0, "clse")
    x[1, 2] = -numpy.inf
    w = weights((3,), "clse")
    _compare(lambda d: np.sum(special.logsumexp(d["x"], axis=1) * w), {"x": x})
    check_second_order(lambda a: np.sum(special.logsumexp(a, axis=0, b=x[0] * 0 + 2.0) * w[0]),
                       rand((3, 4), -2.0, 2.0, "clse2"))
    check_second_order(lambda a: np.sum(special.gammaln(a) * special.psi(a) + special.erf(a)),
                       rand((5,), 0.5, 3.0, "c2"))
