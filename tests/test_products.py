"""Products (jitgrad/numpy/_products.py): matmul and dot of any rank, einsum, tensordot, inner,
outer, kron, cross, vdot, trace, diag, diagonal, tril, triu.

Every case is a function of one or two arrays; its output is reduced as ``np.sum(out * w)`` with
fixed random weights, and checked against NumPy's value and central differences, under the
interpreter.  A sample runs compiled (the batched product's kernel, the views and scatters of
the diagonal family) and is compared with the interpreted result; a few are checked to second
order.  Ids read ``matmul-batch-bcast``, ``einsum-gmm``... (select them with -k).
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

# NumPy 2 deprecates cross products of 2-vectors (which it still computes): they are tested.
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")


def R(*shape, key=None):
    rng = numpy.random.default_rng(zlib.crc32(repr((shape, key)).encode()))
    return rng.standard_normal(shape)


# name: (function of the operands, operands).  Constants the functions close over are made once.
C = {k: R(*s, key=k) for k, s in {
    "45": (4, 5), "10x3x9": (10, 3, 9), "10x3x2": (10, 3, 2), "2x1x4x3": (2, 1, 4, 3),
    "4x9": (4, 9), "9x2": (9, 2), "1x3": (1, 3), "3": (3,), "2": (2,), "3x4": (3, 4)}.items()}

BINARY = {
    "matmul-2d": (lambda a, b: np.matmul(a, b), R(3, 4), R(4, 5)),
    "matmul-1d-1d": (lambda a, b: a @ b, R(4), R(4)),
    "matmul-1d-2d": (lambda a, b: a @ b, R(4), R(4, 3)),
    "matmul-batch": (lambda a, b: np.matmul(a, b), R(2, 3, 4), R(2, 4, 5)),
    "matmul-batch-bcast": (lambda a, b: a @ b, R(2, 1, 3, 4), R(5, 4, 2)),
    "matmul-2d-batch": (lambda a, b: a @ b, R(3, 4), R(5, 4, 2)),
    "matmul-batch-2d": (lambda a, b: a @ b, R(2, 3, 4), R(4, 2)),
    "matmul-1d-batch": (lambda a, b: a @ b, R(4), R(2, 4, 3)),
    "matmul-batch-1d": (lambda a, b: a @ b, R(2, 3, 4), R(4)),
    "dot-0d": (lambda a, b: np.dot(a, b), R(), R(3)),
    "dot-2d": (lambda a, b: np.dot(a, b), R(3, 4), R(4)),
    "dot-nd": (lambda a, b: np.dot(a, b), R(2, 3, 4), R(5, 4, 2)),
    "dot-nd-1d": (lambda a, b: np.dot(a, b), R(2, 3, 4), R(4)),
    "tensordot-int": (lambda a, b: np.tensordot(a, b), R(2, 3, 4), R(3, 4, 5)),
    "tensordot-pairs": (lambda a, b: np.tensordot(a, b, axes=([0, 2], [2, 0])),
                        R(2, 3, 4), R(4, 5, 2)),
    "tensordot-0": (lambda a, b: np.tensordot(a, b, 0), R(2, 3), R(4)),
    "tensordot-1": (lambda a, b: np.tensordot(a, b, axes=1), R(2, 3), R(3, 4)),
    "inner": (lambda a, b: np.inner(a, b), R(2, 3), R(4, 3)),
    "inner-1d": (lambda a, b: np.inner(a, b), R(3), R(3)),
    "outer": (lambda a, b: np.outer(a, b), R(2, 3), R(4)),
    "kron": (lambda a, b: np.kron(a, b), R(2, 3), R(4)),
    "kron-2d": (lambda a, b: np.kron(a, b), R(2, 3), R(2, 2)),
    "cross-3": (lambda a, b: np.cross(a, b), R(4, 3), R(3)),
    "cross-axisa": (lambda a, b: np.cross(a, b, axisa=0), R(2, 4), R(4, 3)),
    "cross-2": (lambda a, b: np.cross(a, b), R(4, 2), R(2)),
    "cross-axis": (lambda a, b: np.cross(a, b, axis=0), R(3, 2), R(3, 2)),
    "cross-axisc": (lambda a, b: np.cross(a, b, axisc=0), R(5, 3), R(5, 3)),
    "vdot": (lambda a, b: np.vdot(a, b), R(2, 3), R(6)),
    "einsum-mm": (lambda a, b: np.einsum("ij,jk->ik", a, b), R(3, 9), R(9, 5)),
    "einsum-batch": (lambda a, b: np.einsum("bij,bjk->bik", a, b), R(2, 3, 9), R(2, 9, 4)),
    "einsum-ta": (lambda a, b: np.einsum("kji,kjn->kin", a, b), R(3, 9, 4), R(3, 9, 5)),
    "einsum-tb": (lambda a, b: np.einsum("kij,knj->kin", a, b), R(3, 4, 9), R(3, 5, 9)),
    "einsum-2d-t": (lambda a, b: np.einsum("ji,nj->in", a, b), R(9, 4), R(5, 9)),
    "einsum-gmm": (lambda a, b: np.einsum("kij,nkj->nki", a, b), R(3, 4, 9), R(10, 3, 9)),
    "einsum-gmm-small": (lambda a, b: np.einsum("kij,nkj->nki", a, b), R(3, 4, 2),
                         R(10, 3, 2)),
    "einsum-dot": (lambda a, b: np.einsum("i,i", a, b), R(5), R(5)),
}

UNARY = {
    "diagonal": (lambda a: np.diagonal(a), R(3, 4)),
    "diagonal-axes": (lambda a: np.diagonal(a, 1, 2, 0), R(3, 2, 4)),
    "diagonal-neg": (lambda a: np.diagonal(a, -1), R(3, 4)),
    "diagonal-method": (lambda a: a.diagonal(offset=1), R(4, 3)),
    "trace": (lambda a: np.trace(a), R(3, 4)),
    "trace-offset-axes": (lambda a: np.trace(a, -1, 1, 2), R(2, 3, 3)),
    "trace-method": (lambda a: a.trace(), R(3, 3)),
    "diag-vector": (lambda a: np.diag(a), R(3)),
    "diag-vector-k": (lambda a: np.diag(a, -1), R(3)),
    "diag-matrix-k": (lambda a: np.diag(a, 1), R(3, 4)),
    "diagflat": (lambda a: np.diagflat(a, 1), R(2, 2)),
    "tril": (lambda a: np.tril(a), R(3, 4)),
    "tril-k-batch": (lambda a: np.tril(a, -1), R(2, 3, 4)),
    "triu": (lambda a: np.triu(a, 1), R(3, 4)),
    "triu-1d": (lambda a: np.triu(a), R(3)),
    "einsum-trace": (lambda a: np.einsum("ii", a), R(3, 3)),
    "einsum-diag": (lambda a: np.einsum("ii->i", a), R(3, 3)),
    "einsum-transpose": (lambda a: np.einsum("ijk->kij", a), R(2, 3, 4)),
    "einsum-sum": (lambda a: np.einsum("ijk->j", a), R(3, 4, 2)),
    "einsum-ellipsis": (lambda a: np.einsum("...ij,...jk", a, C["2x1x4x3"]), R(5, 3, 4)),
    "einsum-ellipsis-sum": (lambda a: np.einsum("i...->...", a), R(2, 3)),
    "einsum-three": (lambda a: np.einsum("ij,jk,kl->il", a, C["4x9"], C["9x2"]), R(3, 4)),
    "einsum-bcast": (lambda a: np.einsum("ij,ij->ij", a, C["1x3"]), R(2, 3)),
    "einsum-outer": (lambda a: np.einsum("i,j", a, C["3"]), R(2)),
    "einsum-implicit": (lambda a: np.einsum("ba,b", a, C["2"]), R(2, 3)),
    "einsum-diag-contract": (lambda a: np.einsum("iij,j->i", a, C["3"]), R(4, 4, 3)),
    "einsum-same-twice": (lambda a: np.einsum("ij,ij->", a, a), R(3, 4)),
}


def _weighted(fn, *args):
    w = R(*numpy.shape(fn(*args)), key="w")
    return lambda *a: np.sum(fn(*a) * w)


@pytest.fixture(autouse=True)
def interpreted(request):
    if "compiled" in request.node.name:  # test_compiled*, test_*_compiled: Numba kernels
        yield
        return
    with jitgrad.execution("interpret"):
        yield


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name):
    fn, a, b = BINARY[name]
    check_grads(_weighted(fn, a, b), a, b, argnum=(0, 1))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    fn, a = UNARY[name]
    check_grads(_weighted(fn, a), a)


def _traced_value(fn, *args):
    """fn's value computed by the traced composition (make_vjp's forward pass)."""
    _, out = jitgrad.make_vjp(fn, argnum=tuple(range(len(args))))(*args)
    return out


@pytest.mark.parametrize("name", sorted(BINARY) + sorted(UNARY))
def test_values_match_numpy(name):
    fn, *args = BINARY[name] if name in BINARY else UNARY[name]
    expected = fn(*args)  # plain arrays: NumPy's own functions
    got = _traced_value(fn, *args)
    assert numpy.shape(got) == numpy.shape(expected)
    numpy.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


COMPILED = ["matmul-batch", "matmul-batch-bcast", "matmul-2d-batch", "einsum-gmm",
            "einsum-ta", "einsum-tb", "tensordot-pairs", "cross-3"]
COMPILED_UNARY = ["diagonal-axes", "diag-vector-k", "tril-k-batch", "einsum-diag-contract"]


@pytest.mark.parametrize("name", COMPILED + COMPILED_UNARY)
def test_compiled(name):
    fn, *args = BINARY[name] if name in BINARY else UNARY[name]
    loss = _weighted(fn, *args)
    argnum = tuple(range(len(args)))
    with jitgrad.execution("interpret"):
        expected = jitgrad.value_and_grad(loss, argnum)(*args)
    value, grads = check_grads(loss, *args, argnum=argnum)
    assert value == pytest.approx(expected[0], rel=1e-12)
    for g, e in zip(grads, expected[1]):
        numpy.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_compiled_float32():
    a, b = R(2, 3, 4).astype(numpy.float32), R(2, 4, 5).astype(numpy.float32)
    out = jitgrad.grad(lambda a: np.sum(np.matmul(a, b) ** 2))(a)
    assert out.dtype == numpy.float32
    expected = 2 * numpy.matmul(numpy.matmul(a, b), numpy.swapaxes(b, 1, 2))
    numpy.testing.assert_allclose(out, expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["matmul-batch", "einsum-gmm", "kron", "cross-3"])
def test_second_order(name):
    fn, a, b = BINARY[name]
    loss = _weighted(lambda a, b: fn(a, b) ** 2, a, b)
    check_second_order(loss, a, b, argnum=0)


def test_second_order_compiled():
    fn, a, b = BINARY["matmul-batch"]
    check_second_order(_weighted(lambda a, b: np.sin(fn(a, b)), a, b), a, b, argnum=1)


def test_plain_arrays_are_numpy():
    a, b = R(2, 3, 4), R(2, 4, 5)
    numpy.testing.assert_array_equal(np.matmul(a, b), numpy.matmul(a, b))
    numpy.testing.assert_array_equal(np.einsum("bij,bjk->bik", a, b),
                                     numpy.einsum("bij,bjk->bik", a, b))
    numpy.testing.assert_array_equal(np.diag(R(3)), numpy.diag(R(3)))


def test_nothing_modified():
    a, b = R(2, 3, 4), R(2, 4, 5)
    a0, b0 = a.copy(), b.copy()
    jitgrad.grad(lambda a, b: np.sum(np.einsum("bij,bjk->bik", a, b) ** 2), (0, 1))(a, b)
    numpy.testing.assert_array_equal(a, a0)
    numpy.testing.assert_array_equal(b, b0)


ERRORS = [
    (lambda a: np.matmul(a, R(5, 2)), R(3, 4), r"np\.matmul: .*\(3, 4\) and \(5, 2\)"),
    (lambda a: np.matmul(a, R(3, 4, 2)), R(2, 3, 4), r"np\.matmul: the batch dimensions"),
    (lambda a: np.matmul(a, 2.0), R(3), r"np\.matmul: scalar operands"),
    (lambda a: np.dot(a, R(2, 5, 3)), R(3, 4), r"np\.dot: shapes \(3, 4\) and \(2, 5, 3\)"),
    (lambda a: np.tensordot(a, R(3, 4), axes=([0], [1])), R(3, 4),
     r"np\.tensordot: shape-mismatch"),
    (lambda a: np.einsum("ij,jk", a, R(5, 2)), R(3, 4), r"np\.einsum: subscript 'j'"),
    (lambda a: np.einsum("ij->k", a), R(3, 4), r"np\.einsum: output subscript 'k'"),
    (lambda a: np.einsum("ijk", a), R(3, 4), r"np\.einsum: subscripts 'ijk'"),
    (lambda a: np.einsum("ij,j", a), R(3, 4), r"np\.einsum: 2 operand subscripts"),
    (lambda a: np.cross(a, a), R(4), r"np\.cross: incompatible dimensions"),
    (lambda a: np.diagonal(a), R(4), r"np\.diagonal: .* at least 2 dimensions"),
    (lambda a: np.vdot(a, R(5)), R(4), r"np\.vdot: .* different sizes"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)), ids=lambda i: f"error{i}")
def test_errors(case):
    fn, a, match = ERRORS[case]
    with pytest.raises((jitgrad.ShapeError, jitgrad.TracingError), match=match):
        jitgrad.grad(lambda a: np.sum(fn(a)))(a)


def test_integer_operands_compiled():
    """Integer products (BLAS has none) are computed in float64 and given NumPy's dtype."""
    k = numpy.arange(24).reshape(2, 3, 4)

    def f(x):
        i = (x * 0.0).astype(numpy.int64) + k  # an integer traced value
        p = np.matmul(i, numpy.ones((4, 2), dtype=numpy.int64)) + np.dot(i[0], k[1].T)[0, 0]
        assert p.dtype == numpy.int64
        return np.sum(p * x[0, 0, 0]) + np.sum(np.einsum("bij,bkj->bik", i, i) * x[1, 0, 0])

    x = R(2, 3, 4)
    g = jitgrad.grad(f)(x)
    expected = numpy.zeros_like(x)
    expected[0, 0, 0] = numpy.sum(k @ numpy.ones((4, 2)) + (k[0] @ k[1].T)[0, 0])
    expected[1, 0, 0] = numpy.sum(k @ numpy.swapaxes(k, 1, 2))
    numpy.testing.assert_allclose(g, expected)


XC = R(10, 3, 16)


def test_einsum_makes_the_product_whose_rows_the_output_reads_along():
    """einsum("kij,nkj->nki", L, xc), ADBench's GMM: out[n, k, :] = L_k xc[n, k], computed per k
    as xc_k L_k^T (rows n, columns i) so that the output, read along i, reads the product along
    its rows; L_k xc_k^T would leave i as the product's row index, read with a stride of n."""
    ir = jitgrad.explain(lambda L: np.sum(np.einsum("kij,nkj->nki", L, XC) ** 2),
                         R(3, 4, 16)).ir
    (product,) = [s for s in ir.stmts if "batched_matmul" in str(s)]
    assert product.out.shape == (3, 10, 4), ir
