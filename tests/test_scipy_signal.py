"""jitgrad.scipy.signal.convolve: values against SciPy (direct method) and autograd (its axes /
dot_axes generalization), gradients of both operands against finite differences over 1-D, 2-D,
ignored and dotted axes and every mode, second order for a sample; interpreted, plus compiled
samples.  Also jitgrad.scipy.misc.logsumexp.  Ids read `full-4:2`, `same-4x3:3x2-axes0_1`."""

from __future__ import annotations

import zlib

import numpy
import pytest
import scipy.signal as ss

import jitgrad
import jitgrad.numpy as np
from jitgrad.errors import ShapeError, TracingError
from jitgrad.scipy.signal import convolve

try:
    from .gradcheck import check_grads, check_second_order
except ImportError:
    from gradcheck import check_grads, check_second_order


pytestmark = pytest.mark.usefixtures("interpret_unless_compiled")


def R(*shape, key=()):  # noqa: N802
    return numpy.random.default_rng(zlib.crc32(repr((shape, key)).encode())).standard_normal(
        shape)


def weights(shape):
    rng = numpy.random.default_rng(zlib.crc32(repr(("w", shape)).encode()))
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def sid(shape):
    return "x".join(map(str, shape))


MODES = ["full", "valid", "same"]
PAIRS = [((4,), (2,)), ((5,), (3,)), ((6,), (4,)), ((2,), (5,)), ((4, 3), (2, 2)),
         ((5, 4), (3, 2)), ((6, 7), (4, 2)), ((4, 3), (4, 1)), ((2, 3), (3, 4)),
         ((3, 4, 2), (2, 2, 2))]


def _loss(a, b, **kw):
    w = weights(numpy.shape(convolve(a, b, **kw)))
    return lambda x, y: np.sum(convolve(x, y, **kw) * w)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sa,sb", PAIRS, ids=[f"{sid(a)}:{sid(b)}" for a, b in PAIRS])
def test_convolve(mode, sa, sb):
    a, b = R(*sa), R(*sb)
    if mode == "valid" and not (all(x >= y for x, y in zip(sa, sb))
                                or all(x <= y for x, y in zip(sa, sb))):
        with pytest.raises(ValueError, match="valid"):
            convolve(a, b, mode=mode)
        return
    numpy.testing.assert_allclose(convolve(a, b, mode=mode),
                                  ss.convolve(a, b, mode, method="direct"), rtol=1e-12,
                                  atol=1e-13)
    check_grads(_loss(a, b, mode=mode), a, b, argnum=(0, 1))


AXES = [([0], [0]), ([1], [1]), ([0], [1]), ([1], [0]), ([0, 1], [0, 1]), ([1, 0], [1, 0])]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes", AXES, ids=["axes" + "_".join(map(str, a[0] + a[1]))
                                            for a in AXES])
def test_convolve_ignore(mode, axes):
    a, b = R(4, 3), R(3, 2)
    try:
        out = convolve(a, b, axes=axes, mode=mode)
    except ValueError:
        return  # valid mode with neither operand larger everywhere
    import autograd.scipy.signal as asg

    numpy.testing.assert_allclose(out, asg.convolve(a, b, axes=axes, mode=mode), rtol=1e-12)
    check_grads(_loss(a, b, axes=axes, mode=mode), a, b, argnum=(0, 1))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dot_axes", [([0], [2]), ([0], [0])], ids=["dot0_2", "dot0_0"])
def test_convolve_ignore_dot(mode, dot_axes):
    a, b = R(3, 3, 2), R(3, 2, 3)
    import autograd.scipy.signal as asg

    kw = dict(axes=([1], [1]), dot_axes=dot_axes, mode=mode)
    numpy.testing.assert_allclose(convolve(a, b, **kw), asg.convolve(a, b, **kw), rtol=1e-12)
    check_grads(_loss(a, b, **kw), a, b, argnum=(0, 1))


def test_convolve_generalization():
    a35, a34, a342 = R(3, 5), R(3, 4), R(3, 4, 2)
    a2543, a24232 = R(2, 5, 4, 3), R(2, 4, 2, 3, 2)
    for mode in ["valid", "full"]:
        numpy.testing.assert_allclose(convolve(a35, a34, axes=([1], [0]), mode=mode)[1, 2],
                                      ss.convolve(a35[1, :], a34[:, 2], mode))
        numpy.testing.assert_allclose(
            convolve(a35, a34, axes=([], []), dot_axes=([0], [0]), mode=mode),
            numpy.tensordot(a35, a34, axes=([0], [0])))
        numpy.testing.assert_allclose(
            convolve(a35, a342, axes=([1], [2]), dot_axes=([0], [0]), mode=mode)[2],
            sum(ss.convolve(a35[i, :], a342[i, 2, :], mode) for i in range(3)))
        numpy.testing.assert_allclose(
            convolve(a2543, a24232, axes=([1, 2], [2, 4]), dot_axes=([0, 3], [0, 3]),
                     mode=mode)[2],
            sum(sum(ss.convolve(a2543[i, :, :, j], a24232[i, 2, :, j, :], mode)
                    for i in range(2)) for j in range(3)))
    check_grads(_loss(a2543, a24232, axes=([1, 2], [2, 4]), dot_axes=([0, 3], [0, 3])),
                a2543, a24232, argnum=(0, 1))


@pytest.mark.parametrize("mode", MODES)
def test_convolve_second_order(mode):
    a, b = R(5, 4, key="s"), R(3, 2, key="s")
    loss = _loss(a, b, mode=mode)
    check_second_order(lambda x: loss(x, b) ** 2, a)
    check_second_order(lambda y: loss(a, y) ** 2, b)


def test_convolve_errors_and_inputs_unmodified():
    with pytest.raises(ValueError, match="mode"):
        convolve(R(3), R(2), mode="circular")
    with pytest.raises(ShapeError, match="scipy.signal.convolve"):
        jitgrad.grad(lambda a: np.sum(convolve(a, R(2, 2))))(R(3))
    with pytest.raises(TracingError, match="at most 3"):
        jitgrad.grad(lambda a: np.sum(convolve(a, R(2, 2, 2, 2))))(R(3, 3, 3, 3))
    a = R(4)
    keep = a.copy()
    jitgrad.grad(lambda x: np.sum(convolve(x, x)))(a)
    numpy.testing.assert_array_equal(a, keep)


def test_other_names_are_scipys_on_plain_arrays():
    import jitgrad.scipy.signal as sig

    numpy.testing.assert_allclose(sig.fftconvolve(R(4), R(2)), ss.fftconvolve(R(4), R(2)))
    with pytest.raises(TracingError, match="scipy.signal.fftconvolve is not supported"):
        jitgrad.grad(lambda a: np.sum(sig.fftconvolve(a, R(2))))(R(4))


def test_compiled_convolve():
    a, b = R(6, 5, key="c"), R(3, 2, key="c")
    wf, ws = weights((8, 6)), weights((6, 5))

    def loss(x, y):
        return (np.sum(convolve(x, y) * wf) + np.sum(convolve(x, y, mode="same") * ws)
                + np.sum(convolve(x, y, mode="valid") ** 2))

    value, grad = jitgrad.value_and_grad(loss, (0, 1))(a, b)
    with jitgrad.execution("interpret"):
        ref_value, ref_grad = jitgrad.value_and_grad(loss, (0, 1))(a, b)
    numpy.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for g, r in zip(grad, ref_grad):
        numpy.testing.assert_allclose(g, r, rtol=1e-11)
    check_grads(loss, a, b, argnum=(0, 1))
    check_second_order(lambda y: loss(a, y), b)


# ------------------------------------------------------------------------------------------------
# jitgrad.scipy.misc
# ------------------------------------------------------------------------------------------------


def test_misc_logsumexp():
    import scipy.special as sp

    import jitgrad.scipy.misc as misc
    import jitgrad.scipy.special as special

    assert misc.logsumexp is special.logsumexp
    x = R(3, 4, key="m")
    numpy.testing.assert_allclose(misc.logsumexp(x, axis=1), sp.logsumexp(x, axis=1))
    check_grads(lambda a: np.sum(misc.logsumexp(a, axis=0) * numpy.arange(1.0, 5.0)), x)


def _conv_reference(a, b, lo, size):
    """The op's definition, summed term by term."""
    out = numpy.zeros(a.shape[:1] + b.shape[:1] + tuple(size))
    for p, q, d in numpy.ndindex(a.shape[0], b.shape[0], a.shape[1]):
        full = ss.convolve(a[p, d], b[q, d], method="direct")
        window = tuple(slice(lo_, lo_ + s) for lo_, s in zip(lo, size))
        piece = full[window]
        out[(p, q) + tuple(slice(0, s) for s in piece.shape)] += piece
    return out


# Each case picks one of _conv_numpy's plans (channels p, d, q; spatial sizes n, m; the window).
PLANS = {
    "windows": ((3, 2, 7, 6, 1), (4, 2, 3, 2, 1), (2, 1, 0), (5, 5, 1)),
    "windows-padded": ((2, 1, 5, 4, 1), (3, 1, 3, 3, 1), (0, 0, 0), (7, 6, 1)),
    "filter-offsets": ((3, 4, 6, 5, 1), (2, 4, 3, 2, 1), (0, 0, 0), (8, 6, 1)),
    "output-offsets": ((2, 5, 6, 6, 1), (3, 5, 7, 5, 1), (5, 3, 0), (2, 2, 1)),
    "swapped": ((2, 1, 2, 2, 2), (3, 1, 4, 3, 3), (1, 1, 1), (4, 3, 3)),
}


@pytest.mark.parametrize("plan", PLANS)
def test_convolution_plans_compute_the_definition(plan):
    from jitgrad.scipy.signal import _conv_numpy, _conv_py

    sa, sb, lo, size = PLANS[plan]
    a, b = R(*sa, key=plan), R(*sb, key=plan)
    ref = _conv_reference(a, b, lo, size)
    numpy.testing.assert_allclose(_conv_numpy(a, b, lo, size), ref, rtol=1e-12, atol=1e-12)
    out32 = _conv_py(a.astype(numpy.float32), b.astype(numpy.float32), list(lo), list(size))
    assert out32.dtype == numpy.float32 and out32.flags.c_contiguous
    numpy.testing.assert_allclose(out32, ref, rtol=1e-4, atol=1e-4)


def test_convolve_of_float32_and_complex():
    a, b = R(5, 4, key="32").astype(numpy.float32), R(3, 2, key="32").astype(numpy.float32)
    g = jitgrad.grad(lambda x, y: np.sum(convolve(x, y) ** 2))(a, b)
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(g, jitgrad.grad(lambda x, y: np.sum(convolve(x, y) ** 2))(
        a.astype(float), b.astype(float)), rtol=1e-4)
    with pytest.raises(TracingError, match="dtype complex128: it convolves float64 and float32"):
        jitgrad.grad(lambda x: np.real(np.sum(convolve(x * 1j, x * 1j))))(R(3))
