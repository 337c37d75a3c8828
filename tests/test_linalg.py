"""numpy.linalg and scipy.linalg (jitgrad/numpy/linalg.py, jitgrad/scipy/linalg.py): values
against NumPy/SciPy and gradients against central differences, over single matrices and stacks
(broadcast over leading dimensions, as autograd's tests), mostly interpreted; every op is also run
compiled once and compared with the interpreter, and a few are checked to second order.

eigh and cholesky are checked on symmetric inputs, as autograd does (the function of A is
f(sym(A)), sym(A) = (tril(A) + tril(A)^T) / 2); eigenvector and singular vector losses are
invariant under the sign choices LAPACK makes.  Ids read ``solve-3d-1d``, ``norm-nuc``...
"""

from __future__ import annotations

import zlib

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_grads, check_second_order
except ImportError:
    from gradcheck import check_grads, check_second_order

scipy_linalg = pytest.importorskip("scipy.linalg")
import jitgrad.scipy.linalg as jsl  # noqa: E402


def R(*shape, key=None):
    rng = numpy.random.default_rng(zlib.crc32(repr((shape, key)).encode()))
    return rng.standard_normal(shape)


def well(*shape):
    """Well-conditioned square matrices: random plus a multiple of the identity."""
    return R(*shape) + 3.0 * numpy.eye(shape[-1])


def psd(*shape):
    a = R(*shape, key="psd")
    return a @ numpy.swapaxes(a, -1, -2) + shape[-1] * numpy.eye(shape[-1])


def sym(a):
    low = np.tril(a)
    return (low + np.linalg.matrix_transpose(low)) / 2.0


def lower(*shape):
    return numpy.tril(R(*shape)) + 3.0 * numpy.eye(shape[-1])


def banded(lower, upper, n):
    """LAPACK band storage (l + u + 1, n) of a diagonally dominant banded matrix."""
    ab = R(lower + upper + 1, n, key="banded")
    ab[upper] += 4.0
    return ab


def _w(shape, key="w"):
    return R(*shape, key=key)


class weighted:
    """np.sum(out * w) of every output (tuples: each one), for fixed random w: made by `loss`
    once the arguments are known (the loss itself has no Python control flow on traced values,
    which jitgrad would convert)."""

    def __init__(self, fn):
        self.fn = fn


def loss_of(entry, args):
    if not isinstance(entry, weighted):
        return entry
    fn = entry.fn
    out = fn(*args)
    ws = [_w(numpy.shape(o), key=i) for i, o in
          enumerate(out if isinstance(out, tuple) else (out,))]
    if isinstance(out, tuple):
        return lambda *a: sum(np.sum(o * w) for o, w in zip(fn(*a), ws))
    return lambda *a: np.sum(fn(*a) * ws[0])


def eig_loss(w, v):
    """Eigenvalues and eigenvectors, invariant to each eigenvector's sign."""
    return (np.sum(w * _w(numpy.shape(w))) +
            np.sum(v * v[..., :1, :] * _w(numpy.shape(v), "v")))


def svd_loss(u, s, vh):
    return (np.sum(s * _w(numpy.shape(s))) + np.sum(u * u[..., :1, :] * _w(numpy.shape(u), "u"))
            + np.sum(vh * vh[..., :, :1] * _w(numpy.shape(vh), "vh")))


L = np.linalg
# name: (loss, args, argnum)
CASES = {
    "inv": (weighted(L.inv), (well(3, 3),), 0),
    "inv-3d": (weighted(L.inv), (well(2, 3, 3),), 0),
    "det": (L.det, (well(3, 3),), 0),
    "det-3d": (weighted(L.det), (well(2, 4, 3, 3),), 0),
    "slogdet": (lambda a: L.slogdet(a)[1], (R(4, 4),), 0),
    "slogdet-3d": (lambda a: np.sum(L.slogdet(a)[1] * L.slogdet(a)[0] * _w((3,))),
                   (R(3, 4, 4),), 0),
    "solve-1d": (weighted(L.solve), (well(3, 3), R(3)), (0, 1)),
    "solve-2d": (weighted(L.solve), (well(3, 3), R(3, 2)), (0, 1)),
    "solve-3d-3d": (weighted(L.solve), (well(2, 3, 3), R(2, 3, 2)), (0, 1)),
    "solve-3d-1d": (weighted(L.solve), (well(2, 3, 3), R(3)), (0, 1)),
    "solve-bcast": (weighted(L.solve), (well(1, 3, 3), R(2, 3, 2)), (0, 1)),
    "solve-2d-3d": (weighted(L.solve), (well(3, 3), R(4, 3, 2)), (0, 1)),
    "cholesky": (weighted(lambda a: L.cholesky(sym(a))), (psd(4, 4),), 0),
    "cholesky-3d": (weighted(lambda a: L.cholesky(sym(a))), (psd(2, 3, 3),), 0),
    "cholesky-upper": (weighted(lambda a: L.cholesky(sym(a), upper=True)), (psd(3, 3),), 0),
    "cholesky-reparam": (lambda a: np.sum(np.sin(L.cholesky(sym(a)) @ R(3, 5))), (psd(3, 3),),
                         0),
    "eigh": (lambda a: eig_loss(*L.eigh(sym(a))), (R(4, 4),), 0),
    "eigh-upper": (lambda a: eig_loss(*L.eigh(sym(a), UPLO="U")), (R(4, 4),), 0),
    "eigh-lower-only": (lambda a: eig_loss(*L.eigh(a)), (R(3, 3),), 0),
    "eigh-upper-only": (lambda a: eig_loss(*L.eigh(a, "U")), (R(3, 3),), 0),
    "eigh-3d": (lambda a: eig_loss(*L.eigh(sym(a))), (R(2, 3, 3),), 0),
    "eigvalsh": (weighted(lambda a: L.eigvalsh(sym(a))), (R(4, 4),), 0),
    "svd-wide": (lambda a: svd_loss(*L.svd(a, full_matrices=False)), (R(3, 5),), 0),
    "svd-square": (lambda a: svd_loss(*L.svd(a)), (R(4, 4),), 0),
    "svd-tall": (lambda a: svd_loss(*L.svd(a, full_matrices=False)), (R(5, 3),), 0),
    "svd-wide-3d": (lambda a: svd_loss(*L.svd(a, full_matrices=False)), (R(2, 3, 5),), 0),
    "svd-tall-3d": (lambda a: svd_loss(*L.svd(a, full_matrices=False)), (R(2, 5, 3),), 0),
    "svd-only-s": (weighted(lambda a: L.svd(a, compute_uv=False)), (R(3, 5),), 0),
    "svd-only-s-3d": (weighted(lambda a: L.svd(a, compute_uv=False)), (R(2, 5, 3),), 0),
    "svdvals": (weighted(L.svdvals), (R(4, 3),), 0),
    "pinv-tall": (weighted(L.pinv), (R(5, 3),), 0),
    "pinv-wide": (weighted(L.pinv), (R(3, 5),), 0),
    "pinv-3d": (weighted(L.pinv), (R(2, 3, 3),), 0),
    "matrix_power-3": (weighted(lambda a: L.matrix_power(a, 3)), (R(3, 3),), 0),
    "matrix_power-neg": (weighted(lambda a: L.matrix_power(a, -2)), (well(2, 3, 3),), 0),
    "matrix_power-5": (weighted(lambda a: L.matrix_power(a, 5)), (0.5 * R(3, 3),), 0),
    "multi_dot": (weighted(lambda a: L.multi_dot([R(3), a, R(4, 2)])), (R(3, 4),), 0),
    "matrix_transpose": (weighted(L.matrix_transpose), (R(2, 3, 4),), 0),
    "norm": (L.norm, (R(3, 4),), 0),
    "norm-vector": (L.norm, (R(5),), 0),
    "norm-axis": (weighted(lambda x: L.norm(x, axis=1)), (R(3, 4),), 0),
    "norm-axis-keepdims": (weighted(lambda x: L.norm(x, axis=0, keepdims=True)), (R(3, 4),), 0),
    "norm-keepdims": (weighted(lambda x: L.norm(x, keepdims=True)), (R(2, 3, 4),), 0),
    "norm-ord1": (lambda x: L.norm(x, 1), (R(5),), 0),
    "norm-ord3": (lambda x: L.norm(x, 3), (R(5),), 0),
    "norm-ord1.5-axis": (weighted(lambda x: L.norm(x, 1.5, axis=-1)), (R(3, 4),), 0),
    "norm-ordinf": (lambda x: L.norm(x, numpy.inf), (R(5),), 0),
    "norm-ord-inf": (lambda x: L.norm(x, -numpy.inf), (R(5),), 0),
    "norm-fro": (lambda x: L.norm(x, "fro"), (R(3, 4),), 0),
    "norm-fro-axes": (weighted(lambda x: L.norm(x, "fro", axis=(2, 0))), (R(3, 4, 2),), 0),
    "norm-nuc": (lambda x: L.norm(x, "nuc"), (R(3, 4),), 0),
    "norm-nuc-axes": (weighted(lambda x: L.norm(x, "nuc", axis=(0, 2), keepdims=True)),
                      (R(3, 4, 2),), 0),
    "norm-matrix1": (lambda x: L.norm(x, 1), (R(3, 4),), 0),
    "norm-matrix-1": (lambda x: L.norm(x, -1), (R(3, 4),), 0),
    "norm-matrixinf": (lambda x: L.norm(x, numpy.inf), (R(3, 4),), 0),
    "norm-matrix-inf-axes": (weighted(lambda x: L.norm(x, -numpy.inf, axis=(1, 0))),
                             (R(3, 4, 2),), 0),
    "norm-matrix2": (lambda x: L.norm(x, 2), (R(3, 4),), 0),
    "norm-matrix-2": (lambda x: L.norm(x, -2), (R(3, 4),), 0),
    "vector_norm": (weighted(lambda x: L.vector_norm(x, axis=(0, 2), ord=3)), (R(3, 4, 2),), 0),
    "vector_norm-all": (lambda x: L.vector_norm(x), (R(3, 4),), 0),
    "matrix_norm": (weighted(lambda x: L.matrix_norm(x, ord="nuc")), (R(2, 3, 4),), 0),
    # scipy.linalg
    "sp-solve_triangular-lower": (weighted(lambda a, b: jsl.solve_triangular(a, b, lower=True)),
                                  (lower(3, 3), R(3, 2)), (0, 1)),
    "sp-solve_triangular-upper-T": (
        weighted(lambda a, b: jsl.solve_triangular(a, b, trans="T")),
        (numpy.swapaxes(lower(4, 4), 0, 1), R(4)), (0, 1)),
    "sp-solve_triangular-unit": (
        weighted(lambda a, b: jsl.solve_triangular(a, b, trans=1, lower=True, unit_diagonal=True)),
        (lower(3, 3), R(3, 2)), (0, 1)),
    "sp-solve_triangular-full": (weighted(lambda a, b: jsl.solve_triangular(a, b, lower=True)),
                                 (R(3, 3) + 3 * numpy.eye(3), R(3)), (0, 1)),
    "sp-cholesky": (weighted(lambda a: jsl.cholesky(sym(a))), (psd(3, 3),), 0),
    "sp-cholesky-lower": (weighted(lambda a: jsl.cholesky(sym(a), lower=True)), (psd(3, 3),), 0),
    "sp-cho_solve": (weighted(lambda a, b: jsl.cho_solve(jsl.cho_factor(sym(a)), b)),
                     (psd(3, 3), R(3, 2)), (0, 1)),
    "sp-cho_solve-lower": (
        weighted(lambda a, b: jsl.cho_solve((jsl.cholesky(sym(a), lower=True), True), b)),
        (psd(3, 3), R(3)), (0, 1)),
    "sp-inv": (weighted(jsl.inv), (well(3, 3),), 0),
    "sp-det": (jsl.det, (well(3, 3),), 0),
    "sp-sqrtm": (weighted(lambda a: jsl.sqrtm(sym(a))), (psd(3, 3),), 0),
    "sp-block_diag": (weighted(lambda a, b: jsl.block_diag(a, b, R(1, 2))), (R(2, 3), R(2)),
                      (0, 1)),
    "sp-solve": (weighted(jsl.solve), (well(3, 3), R(3, 2)), (0, 1)),
    "sp-solve_banded": (weighted(lambda ab, b: jsl.solve_banded((1, 1), ab, b)),
                        (banded(1, 1, 5), R(5)), (0, 1)),
    "sp-solve_banded-2d": (weighted(lambda ab, b: jsl.solve_banded((2, 0), ab, b)),
                           (banded(2, 0, 4), R(4, 2)), (0, 1)),
}

@pytest.fixture(autouse=True)
def interpreted(request):
    if "compiled" in request.node.name:  # test_compiled*, test_*_compiled: Numba kernels
        yield
        return
    with jitgrad.execution("interpret"):
        yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_grad(name):
    loss, args, argnum = CASES[name]
    loss = loss_of(loss, args)
    check_grads(loss, *args, argnum=argnum, rtol=1e-5, atol=1e-7)


VALUES = [
    ("inv", lambda: (L.inv, numpy.linalg.inv, well(2, 3, 3))),
    ("det", lambda: (L.det, numpy.linalg.det, well(2, 3, 3))),
    ("slogdet", lambda: (lambda a: L.slogdet(a)[1], lambda a: numpy.linalg.slogdet(a)[1],
                         R(2, 3, 3))),
    ("solve", lambda: (lambda a: L.solve(a, R(3)), lambda a: numpy.linalg.solve(a, R(3)),
                       well(2, 3, 3))),
    ("cholesky", lambda: (L.cholesky, numpy.linalg.cholesky, psd(2, 3, 3))),
    ("eigvalsh", lambda: (L.eigvalsh, numpy.linalg.eigvalsh, psd(2, 3, 3))),
    ("svdvals", lambda: (lambda a: L.svd(a, compute_uv=False),
                         lambda a: numpy.linalg.svd(a, compute_uv=False), R(2, 3, 4))),
    ("pinv", lambda: (L.pinv, numpy.linalg.pinv, R(2, 4, 3))),
    ("norm-nuc", lambda: (lambda a: L.norm(a, "nuc"), lambda a: numpy.linalg.norm(a, "nuc"),
                          R(3, 4))),
    ("norm-axis", lambda: (lambda a: L.norm(a, 3, axis=0, keepdims=True),
                           lambda a: numpy.linalg.norm(a, 3, axis=0, keepdims=True), R(3, 4))),
    ("norm-matrixinf", lambda: (lambda a: L.norm(a, numpy.inf, axis=(2, 0)),
                                lambda a: numpy.linalg.norm(a, numpy.inf, axis=(2, 0)),
                                R(3, 4, 2))),
    ("matrix_power", lambda: (lambda a: L.matrix_power(a, -3),
                              lambda a: numpy.linalg.matrix_power(a, -3), well(3, 3))),
    ("sp-solve_triangular", lambda: (lambda a: jsl.solve_triangular(a, R(3, 2), trans="T"),
                                     lambda a: scipy_linalg.solve_triangular(a, R(3, 2),
                                                                             trans="T"),
                                     numpy.triu(well(3, 3)) + numpy.tril(R(3, 3), -1))),
    ("sp-solve_banded", lambda: (lambda ab: jsl.solve_banded((1, 2), ab, R(5, 2)),
                                 lambda ab: scipy_linalg.solve_banded((1, 2), ab, R(5, 2)),
                                 banded(1, 2, 5))),
    ("sp-sqrtm", lambda: (jsl.sqrtm, lambda a: numpy.real(scipy_linalg.sqrtm(a)), psd(3, 3))),
    ("sp-cho_solve", lambda: (lambda a: jsl.cho_solve(jsl.cho_factor(a), R(3)),
                              lambda a: scipy_linalg.cho_solve(scipy_linalg.cho_factor(a), R(3)),
                              psd(3, 3))),
]


@pytest.mark.parametrize("name,make", VALUES, ids=[v[0] for v in VALUES])
def test_values(name, make):
    ours, ref, a = make()
    _, got = jitgrad.make_vjp(ours)(a)
    numpy.testing.assert_allclose(got, ref(a), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(ours(a), ref(a), rtol=1e-12, atol=1e-12)  # plain arrays


def test_eigh_and_svd_values():
    a = psd(2, 3, 3)
    _, (w, v) = jitgrad.make_vjp(L.eigh)(a)
    numpy.testing.assert_allclose(v @ (w[..., None] * numpy.swapaxes(v, 1, 2)), a, atol=1e-10)
    b = R(2, 3, 5)
    _, (u, s, vh) = jitgrad.make_vjp(lambda b: L.svd(b, full_matrices=False))(b)
    numpy.testing.assert_allclose((u * s[..., None, :]) @ vh, b, atol=1e-10)


COMPILED = ["inv-3d", "det", "slogdet-3d", "solve-bcast", "cholesky-3d", "eigh-3d", "svd-tall",
            "svd-only-s", "pinv-wide", "sp-solve_triangular-upper-T", "sp-cho_solve", "norm-nuc",
            "sp-sqrtm", "sp-solve_banded"]


@pytest.mark.parametrize("name", COMPILED)
def test_compiled(name):
    loss, args, argnum = CASES[name]
    loss = loss_of(loss, args)
    with jitgrad.execution("interpret"):
        expected = jitgrad.value_and_grad(loss, argnum)(*args)
    value, grads = check_grads(loss, *args, argnum=argnum, rtol=1e-5, atol=1e-7)
    assert value == pytest.approx(expected[0], rel=1e-10)
    grads = grads if isinstance(argnum, tuple) else (grads,)
    expected_grads = expected[1] if isinstance(argnum, tuple) else (expected[1],)
    for g, e in zip(grads, expected_grads):
        numpy.testing.assert_allclose(g, e, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "solve-3d-1d", "cholesky", "eigh",
                                  "svd-tall", "sp-solve_triangular-lower"])
def test_second_order(name):
    loss, args, argnum = CASES[name]
    loss = loss_of(loss, args)
    check_second_order(loss, *args, argnum=0, rtol=1e-4, atol=1e-6)


def test_second_order_compiled():
    loss, args, _ = CASES["slogdet-3d"]
    loss = loss_of(loss, args)
    check_second_order(loss, *args, rtol=1e-4, atol=1e-6)


def test_eigh_eigenvalues_only_at_repeated_eigenvalues():
    """autograd's convention: with the eigenvectors unused, the gradient is finite at repeated
    eigenvalues (the eigenvector term, infinite there, is skipped)."""
    w = _w((3,))
    g = jitgrad.grad(lambda a: np.sum(L.eigh(a)[0] * w))(numpy.eye(3))
    numpy.testing.assert_allclose(g, numpy.diag(w), atol=1e-12)


def test_float32_stays_float32():
    a = well(3, 3).astype(numpy.float32)
    g = jitgrad.grad(lambda a: np.sum(L.inv(a)))(a)
    assert g.dtype == numpy.float32


def test_nothing_modified():
    a, b = well(2, 3, 3), R(2, 3, 2)
    a0, b0 = a.copy(), b.copy()
    jitgrad.grad(lambda a, b: np.sum(L.solve(a, b) ** 2) + L.slogdet(a)[1].sum(), (0, 1))(a, b)
    numpy.testing.assert_array_equal(a, a0)
    numpy.testing.assert_array_equal(b, b0)


ERRORS = [
    (lambda a: L.inv(a), R(3, 4), jitgrad.ShapeError, r"np\.linalg\.inv: .*\(3, 4\) must be"),
    (lambda a: L.det(a), R(3), jitgrad.ShapeError, r"np\.linalg\.det: 1-dimensional"),
    (lambda a: L.solve(a, R(4)), well(3, 3), jitgrad.ShapeError,
     r"np\.linalg\.solve: .*\(3, 3\) and `b` of shape \(4,\) do not match"),
    (lambda a: L.solve(a, R(3, 2)), R(2, 3), jitgrad.ShapeError, r"np\.linalg\.solve: `a`"),
    (lambda a: L.solve(a, R(3, 3, 1)), well(2, 3, 3), jitgrad.ShapeError,
     r"np\.linalg\.solve: the leading dimensions"),
    (lambda a: L.norm(a, "nuc"), R(3), jitgrad.ShapeError, r"np\.linalg\.norm: invalid norm"),
    (lambda a: L.norm(a, 2), R(2, 3, 4), jitgrad.ShapeError, r"np\.linalg\.norm: improper"),
    (lambda a: L.svd(a), R(3, 4), jitgrad.TracingError, r"full_matrices=True"),
    (lambda a: L.eigh(a, "X"), R(3, 3), jitgrad.TracingError, r"UPLO"),
    (lambda a: jsl.solve_triangular(a, R(4)), R(3, 3), jitgrad.ShapeError,
     r"scipy\.linalg\.solve_triangular"),
    (lambda a: L.matrix_power(a, 1.5), R(3, 3), jitgrad.TracingError, r"integer"),
    (lambda ab: jsl.solve_banded((1, 1), ab, R(4)), R(2, 4), jitgrad.ShapeError,
     r"solve_banded: ab has shape \(2, 4\); with \(l, u\) = \(1, 1\) it must be \(3, n\)"),
    (lambda ab: jsl.solve_banded((1, 1), ab, R(5)), R(3, 4), jitgrad.ShapeError,
     r"solve_banded: b of shape \(5,\)"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)), ids=lambda i: f"error{i}")
def test_errors(case):
    fn, a, kind, match = ERRORS[case]
    with pytest.raises(kind, match=match):
        jitgrad.grad(lambda a: np.sum(fn(a)))(a)


SINGULAR = [
    ("inv", lambda a: np.sum(L.inv(a))),
    ("solve", lambda a: np.sum(L.solve(a, R(3)))),
    ("cholesky", lambda a: np.sum(L.cholesky(a))),
    ("solve_triangular", lambda a: np.sum(jsl.solve_triangular(a, R(3)))),
]


@pytest.mark.parametrize("name,fn", SINGULAR, ids=[s[0] for s in SINGULAR])
def test_singular_interpreted(name, fn):
    with pytest.raises(numpy.linalg.LinAlgError):
        jitgrad.grad(fn)(numpy.zeros((3, 3)))


@pytest.mark.parametrize("name,fn", SINGULAR, ids=[s[0] for s in SINGULAR])
def test_singular_compiled(name, fn):
    with pytest.raises(numpy.linalg.LinAlgError):
        jitgrad.grad(fn)(numpy.zeros((3, 3)))
    # The kernel still works afterwards on a good matrix.
    assert numpy.all(numpy.isfinite(jitgrad.grad(fn)(psd(3, 3))))


# --- eig, and the complex cases of eigh and slogdet, against autograd ---------------------------

def _cplx(*shape, key=None):
    return R(*shape, key=key) + 1j * R(*shape, key=(key, "imag"))


def _eig_loss(np, a):
    """Real, invariant to each eigenvector's phase (as autograd's tests: |v|)."""
    w, v = np.linalg.eig(a)
    return (np.sum(np.real(w) * _w(w.shape)) + np.sum(np.imag(w) * _w(w.shape, "i"))
            + np.sum(np.abs(v) * _w(v.shape, "v")))


def _eigh_loss(np, a):
    w, v = np.linalg.eigh(a)
    return np.sum(w * _w(w.shape)) + np.sum(np.abs(v) ** 2 * _w(v.shape, "v"))


def _svd_loss(np, a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return (np.sum(s * _w(s.shape)) + np.sum(np.abs(u) ** 2 * _w(u.shape, "u"))
            + np.sum(np.abs(vh) ** 2 * _w(vh.shape, "vh")))


def _slogdet_loss(np, a):
    sign, logdet = np.linalg.slogdet(a)
    return np.sum(logdet * _w(logdet.shape)) + np.sum(np.abs(sign))


def _slogdet_sign_loss(np, a):
    """Uses the complex sign, whose gradient autograd drops (checked against differences)."""
    sign, logdet = np.linalg.slogdet(a)
    return np.sum(logdet * _w(logdet.shape)) + np.sum(np.real(sign) + 2.0 * np.imag(sign))


COMPLEX_CASES = [
    ("eig-real", _eig_loss, lambda: R(6, 6, key="eig")),
    ("eig-complex", _eig_loss, lambda: _cplx(5, 5, key="eig")),
    ("eig-batched", _eig_loss, lambda: _cplx(3, 4, 4, key="eig")),
    ("eigh-complex", _eigh_loss, lambda: _cplx(4, 4, key="eigh")),
    ("svd-complex-wide", _svd_loss, lambda: _cplx(3, 5, key="svd")),
    ("svd-complex-tall", _svd_loss, lambda: _cplx(2, 5, 3, key="svd")),
    ("svd-complex-s", lambda np, a: np.sum(np.linalg.svd(a, compute_uv=False) * _w((3,))),
     lambda: _cplx(3, 3, key="svd")),
    ("slogdet-complex", _slogdet_loss, lambda: _cplx(2, 3, 3, key="slogdet")),
    ("slogdet-complex-sign", _slogdet_sign_loss, lambda: _cplx(2, 3, 3, key="slogdet")),
]


def _directional(f, a, g, eps=1e-6):
    """Central differences along random directions (complex ones for complex a): the
    derivative along v is Re(sum(g * v)) in autograd's convention."""
    rng = numpy.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(a.shape)
        if numpy.iscomplexobj(a):
            v = v + 1j * rng.standard_normal(a.shape)
        numeric = (f(a + eps * v) - f(a - eps * v)) / (2 * eps)
        assert numpy.real(numpy.sum(g * v)) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name,loss,make", COMPLEX_CASES, ids=[c[0] for c in COMPLEX_CASES])
def test_eig_and_complex_factorisations_against_autograd(name, loss, make):
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    a = make()
    value, g = jitgrad.value_and_grad(lambda a: loss(np, a))(a)
    assert g.dtype == a.dtype
    assert value == pytest.approx(loss(anp, a), rel=1e-12)
    if not name.endswith("-sign"):
        expected = autograd.grad(lambda a: loss(anp, a))(a)
        numpy.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-11)
    _directional(lambda a: loss(numpy, a), a, g)


def test_eig_compiled_matches_the_interpreter():
    a = R(2, 5, 5, key="eig-compiled")
    f = lambda a: _eig_loss(np, a)  # noqa: E731
    with jitgrad.execution("interpret"):
        expected = jitgrad.value_and_grad(f)(a)
    value, g = jitgrad.value_and_grad(f)(a)
    assert value == pytest.approx(expected[0], rel=1e-12)
    numpy.testing.assert_allclose(g, expected[1], rtol=1e-10, atol=1e-12)
    _directional(lambda a: _eig_loss(numpy, a), a, g)


def test_eig_values_are_numpys_and_always_complex():
    a = R(2, 4, 4, key="eig-values")
    _, (w, v) = jitgrad.make_vjp(L.eig)(a)
    ew, ev = numpy.linalg.eig(a)
    assert w.dtype == v.dtype == numpy.complex128
    numpy.testing.assert_allclose(w, ew, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(v, ev, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(a @ v, v * w[..., None, :], atol=1e-10)
    sym_a = a + numpy.swapaxes(a, 1, 2)  # real eigenvalues: still complex, as JAX's eig
    _, w = jitgrad.make_vjp(L.eigvals)(sym_a)
    assert w.dtype == numpy.complex128
    numpy.testing.assert_allclose(numpy.sort(w.real), numpy.linalg.eigvalsh(sym_a), atol=1e-10)
    _, w32 = jitgrad.make_vjp(L.eigvals)(a.astype(numpy.float32))
    assert w32.dtype == numpy.complex64


def test_eig_second_order():
    loss = lambda a: _eig_loss(np, a)  # noqa: E731
    check_second_order(loss, R(4, 4, key="eig-2"), rtol=1e-4, atol=1e-6)
