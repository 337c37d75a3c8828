"""jitgrad.scipy.stats: every function's traced value against SciPy's (check_grads compares the
traced value with the function on plain arrays, which is SciPy's own), gradients against
finite differences for every argument autograd differentiates (and a few more), broadcasting,
second order for a sample; interpreted, plus a compiled sample.  Ids read `norm.logpdf-4`,
`t.cdf-4x3`."""

from __future__ import annotations

import zlib

import numpy
import pytest
import scipy.stats as sst

import jitgrad
import jitgrad.numpy as np
import jitgrad.scipy.stats.multivariate_normal as mvn
from jitgrad.errors import TracingError
from jitgrad.scipy import stats

try:
    from .gradcheck import check_grads, check_second_order
except ImportError:
    from gradcheck import check_grads, check_second_order


pytestmark = pytest.mark.usefixtures("interpret_unless_compiled")


def _rng(*key):
    return numpy.random.default_rng(zlib.crc32(repr(key).encode()))


def R(shape, *key):  # noqa: N802  (autograd's test names)
    return _rng("R", shape, *key).standard_normal(shape)


def U(lo, hi, shape, *key):  # noqa: N802
    return _rng("U", lo, hi, shape, *key).uniform(lo, hi, shape)


def pos(shape, *key, lo=1.1):
    return R(shape, *key) ** 2 + lo


def weights(shape, *key):
    rng = _rng("w", shape, *key)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


# "dist.fn", argument makers for the (4,) case and the broadcast case, argnums checked
def _norm_args(b):
    return [R((4, 3) if b else (4,), "x"), R((1, 3) if b else (4,), "loc"),
            pos((4, 1) if b else (4,), "scale")]


def _t_args(b):
    return [R((4, 3) if b else (4,), "x"), pos((1, 3) if b else (4,), "df", lo=2.1),
            R((4, 3) if b else (4,), "loc"), pos((4, 1) if b else (4,), "scale", lo=2.1)]


def _beta_args(b):
    return [U(0.05, 0.95, (4, 3) if b else (4,), "x"), pos((1, 3) if b else (4,), "a"),
            pos((4, 1) if b else (4,), "b")]


def _gamma_args(b):
    return [pos((4, 3) if b else (4,), "x"), pos((4, 1) if b else (4,), "a")]


def _chi2_args(b):
    return [pos((4, 3) if b else (4,), "x"),
            numpy.array([[1.0, 2.0, 3.0]]) if b else numpy.array([1.0, 2.0, 3.0, 4.5])]


def _poisson_args(b):
    return [numpy.round(R((4, 3) if b else (4,), "k") ** 2), pos((4, 1) if b else (4,), "mu")]


CASES = [
    ("norm.pdf", _norm_args, (0, 1, 2)), ("norm.cdf", _norm_args, (0, 1, 2)),
    ("norm.sf", _norm_args, (0, 1, 2)), ("norm.logpdf", _norm_args, (0, 1, 2)),
    ("norm.logcdf", _norm_args, (0, 1, 2)), ("norm.logsf", _norm_args, (0, 1, 2)),
    ("t.pdf", _t_args, (0, 1, 2, 3)), ("t.logpdf", _t_args, (0, 1, 2, 3)),
    ("t.cdf", _t_args, (0, 2, 3)), ("t.logcdf", _t_args, (0, 2, 3)),
    ("beta.pdf", _beta_args, (0, 1, 2)), ("beta.logpdf", _beta_args, (0, 1, 2)),
    ("beta.cdf", _beta_args, (0,)),
    ("gamma.pdf", _gamma_args, (0, 1)), ("gamma.logpdf", _gamma_args, (0, 1)),
    ("gamma.cdf", _gamma_args, (0,)),
    ("chi2.pdf", _chi2_args, (0,)), ("chi2.logpdf", _chi2_args, (0, 1)),
    ("chi2.cdf", _chi2_args, (0,)),
    ("poisson.pmf", _poisson_args, (1,)), ("poisson.logpmf", _poisson_args, (1,)),
    ("poisson.cdf", _poisson_args, (1,)),
]
SECOND = {"norm.logpdf", "t.logpdf", "gamma.logpdf", "beta.cdf", "poisson.pmf", "norm.logcdf"}


def _fn(name):
    dist, fn = name.split(".")
    return getattr(getattr(stats, dist), fn), getattr(getattr(sst, dist), fn)


@pytest.mark.parametrize("name,make,argnums", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("broadcast", [False, True], ids=["4", "4x3"])
def test_distribution(name, make, argnums, broadcast):
    fn, ref = _fn(name)
    args = make(broadcast)
    numpy.testing.assert_allclose(fn(*args), ref(*args), rtol=1e-14)  # plain arrays: SciPy's
    w = weights(numpy.shape(ref(*args)), name)
    argnums = tuple(a for a in argnums if numpy.ndim(args[a]) > 0 or broadcast)

    def loss(*a):
        return np.sum(fn(*a) * w)

    check_grads(loss, *args, argnum=argnums)  # also checks the traced value against SciPy's
    if name in SECOND and not broadcast:
        check_second_order(loss, *args, argnum=argnums[-1])


def test_loc_and_scale_keywords():
    x, loc, scale = R((5,), "kx"), 0.3, 1.7
    for name in ("gamma.logpdf", "chi2.logpdf", "beta.logpdf", "gamma.cdf"):
        fn, ref = _fn(name)
        shape_args = {"gamma": (2.5,), "chi2": (3.0,), "beta": (2.0, 3.0)}[name.split(".")[0]]
        xx = numpy.abs(x) * 0.3 + 0.35 if name.startswith("beta") else numpy.abs(x) + 0.5

        def loss(a, s):
            return np.sum(fn(a, *shape_args, loc=0.1, scale=s))

        numpy.testing.assert_allclose(
            jitgrad.value_and_grad(loss)(xx, scale)[0],
            numpy.sum(ref(xx, *shape_args, loc=0.1, scale=scale)), rtol=1e-12, err_msg=name)
        check_grads(loss, xx, scale, argnum=(0, 1))
    check_grads(lambda a: np.sum(stats.norm.ppf(a, loc, scale)), U(0.1, 0.9, (4,), "q"))


def test_poisson_non_integer_and_negative_k():
    k = numpy.array([-1.0, 0.5, 2.0, 3.0])
    mu = numpy.array([1.5, 2.0, 2.5, 0.7])
    v, g = jitgrad.value_and_grad(lambda m: np.sum(stats.poisson.pmf(k, m)))(mu)
    numpy.testing.assert_allclose(v, numpy.sum(sst.poisson.pmf(k, mu)), rtol=1e-14)
    assert g[0] == 0.0 and g[1] == 0.0
    v = jitgrad.value_and_grad(lambda m: np.sum(stats.poisson.logpmf(k, m)))(mu)[0]
    assert v == -numpy.inf
    v = jitgrad.value_and_grad(lambda m: np.sum(stats.poisson.cdf(k, m)))(mu)[0]
    numpy.testing.assert_allclose(v, numpy.sum(sst.poisson.cdf(k, mu)), rtol=1e-14)


@pytest.mark.parametrize("name,argnum", [("t.cdf", 1), ("gamma.cdf", 1), ("beta.cdf", 2)])
def test_cdf_parameters_without_a_derivative_say_so(name, argnum):
    fn, _ = _fn(name)
    args = {"t.cdf": [R((3,), "x"), pos((3,), "df")], "gamma.cdf": [pos((3,), "x"), 2.0],
            "beta.cdf": [U(0.1, 0.9, (3,), "x"), 2.0, pos((3,), "b")]}[name]
    args[argnum] = numpy.asarray(args[argnum], dtype=float)
    with pytest.raises(TracingError, match="cannot differentiate"):
        jitgrad.grad(lambda *a: np.sum(fn(*a)), argnum)(*args)


# ------------------------------------------------------------------------------------------------
# Dirichlet
# ------------------------------------------------------------------------------------------------

ALPHA = _rng("alpha").random(4) ** 2 + 1.2
X = sst.dirichlet.rvs(ALPHA, size=1, random_state=1)[0]


def _normalize(x):
    return x / np.sum(x)


@pytest.mark.parametrize("fn", ["pdf", "logpdf"])
def test_dirichlet(fn):
    f, ref = getattr(stats.dirichlet, fn), getattr(sst.dirichlet, fn)
    numpy.testing.assert_allclose(
        jitgrad.value_and_grad(lambda a: f(X, a))(ALPHA)[0], ref(X, ALPHA), rtol=1e-13)
    check_grads(lambda x, a: f(_normalize(x), a), X, ALPHA, argnum=(0, 1))
    xs = sst.dirichlet.rvs(ALPHA, size=3, random_state=2).T  # (K, N)
    w = weights((3,), "dir")
    numpy.testing.assert_allclose(
        jitgrad.value_and_grad(lambda a: np.sum(f(xs, a) * w))(ALPHA)[0],
        numpy.sum(ref(xs, ALPHA) * w), rtol=1e-13)
    check_grads(lambda a: np.sum(f(xs, a) * w), ALPHA)
    if fn == "logpdf":
        check_second_order(lambda a: f(X, a), ALPHA)


def test_dirichlet_shape_error():
    from jitgrad.errors import ShapeError

    with pytest.raises(ShapeError, match="scipy.stats.dirichlet.logpdf"):
        jitgrad.grad(lambda a: stats.dirichlet.logpdf(numpy.ones(3) / 3, a))(ALPHA)


# ------------------------------------------------------------------------------------------------
# Multivariate normal
# ------------------------------------------------------------------------------------------------


def _linalg_ready():
    return all(f in getattr(np.linalg, "SUPPORTED", {}) for f in ("solve", "slogdet"))


needs_linalg = pytest.mark.skipif(not _linalg_ready(),
                                  reason="jitgrad.numpy.linalg.solve/slogdet not traced yet")


def _symmetrize(fun, argnum):
    def wrapped(*args):
        args = list(args)
        args[argnum] = 0.5 * (args[argnum] + np.transpose(args[argnum]))
        return fun(*args)

    return wrapped


def _psd(d, *key):
    m = R((d, d), "psd", *key)
    return m.T @ m + numpy.eye(d)


@pytest.mark.parametrize("fn", ["pdf", "logpdf"])
@pytest.mark.parametrize("xshape", [(4,), (5, 4)], ids=["4", "5x4"])
@needs_linalg
def test_mvn(fn, xshape):
    f = getattr(mvn, fn)
    x, mean, cov = R(xshape, "x"), R((4,), "m"), _psd(4)
    w = weights(numpy.shape(f(x, mean, cov)), "mvn") if len(xshape) == 2 else 1.3

    def loss(a, m, c):
        return np.sum(f(a, m, c) * w)

    check_grads(_symmetrize(loss, 2), x, mean, cov, argnum=(0, 1, 2))


@needs_linalg
def test_mvn_entropy():
    check_grads(_symmetrize(mvn.entropy, 1), 10 * R((4,), "e"), _psd(4, "e"), argnum=(0, 1))


@pytest.mark.parametrize("cov", ["scalar", "diag"])
def test_mvn_diagonal_cov(cov):
    x, mean = R((5, 3), "dx"), R((3,), "dm")
    c = 1.7 if cov == "scalar" else pos((3,), "dc")
    w = weights((5,), "dcov")
    for f in (mvn.logpdf, mvn.pdf):
        check_grads(lambda a, m, s: np.sum(f(a, m, s) * w), x, mean, c, argnum=(0, 1, 2))
        check_grads(lambda a: f(a, mean, c), x[0])
    ref = sst.multivariate_normal.entropy(mean, numpy.diag(numpy.broadcast_to(c, (3,))))
    numpy.testing.assert_allclose(jitgrad.value_and_grad(
        lambda s: mvn.entropy(mean, s))(numpy.broadcast_to(c, (3,)).copy())[0], ref)
    check_second_order(lambda a: np.sum(mvn.logpdf(a, mean, c) * w), x)


def test_mvn_allow_singular_is_a_clear_error():
    with pytest.raises(TracingError, match="allow_singular"):
        jitgrad.grad(lambda a: mvn.logpdf(a, numpy.zeros(2), 1.0, allow_singular=True))(
            numpy.ones(2))


# ------------------------------------------------------------------------------------------------
# Compiled
# ------------------------------------------------------------------------------------------------

_CW = {name: weights((4,), "cw", name) for name, _, _ in CASES}
_CARGS = {name: make(False) for name, make, _ in CASES}  # arrays made outside the trace
_MVN = (numpy.zeros(3), numpy.array([1.0, 2.0, 0.5]))


def _all(d):
    total = 0.0
    for name, make, argnums in CASES:
        fn, _ = _fn(name)
        args = list(_CARGS[name])
        args[argnums[-1]] = d[name]
        total = total + np.sum(fn(*args) * _CW[name])
    return total + stats.dirichlet.logpdf(X, d["dirichlet"]) + np.sum(mvn.logpdf(d["mvn"], *_MVN))


def test_compiled_every_distribution():
    arg = {name: make(False)[argnums[-1]] for name, make, argnums in CASES}
    arg["dirichlet"], arg["mvn"] = ALPHA, R((2, 3), "cmvn")
    value, grad = jitgrad.value_and_grad(_all)(arg)
    with jitgrad.execution("interpret"):
        ref_value, ref_grad = jitgrad.value_and_grad(_all)(arg)
    numpy.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for k in arg:
        numpy.testing.assert_allclose(grad[k], ref_grad[k], rtol=1e-11, atol=1e-14, err_msg=k)
    check_grads(_all, arg)
    x = R((4,), "c2")
    check_second_order(lambda s: np.sum(stats.t.logpdf(x, 3.0, 0.5, s)), pos((4,), "c2s"))
