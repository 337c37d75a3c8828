"""jitgrad.numpy.fft against autograd (values and gradients, even lengths, where autograd's
rules apply) and against central differences (odd lengths and n=, which autograd lacks)."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np

try:  # works whether or not tests/ becomes a package
    from .gradcheck import check_grads
except ImportError:
    from gradcheck import check_grads

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

rng = numpy.random.default_rng(0)
X = rng.standard_normal((4, 6))
W = rng.standard_normal((4, 6)) + 1j * rng.standard_normal((4, 6))

CASES = {
    "fft": lambda np, x: np.sum(np.abs(np.fft.fft(x * W)) ** 2
                                + np.real(np.fft.fft(x, axis=0) * W)),
    "ifft-ortho": lambda np, x: np.sum(np.real(np.fft.ifft(x * W, norm="ortho") * W)),
    "fft2": lambda np, x: np.sum(np.imag(np.fft.fft2(x * W)) * x),
    "ifft2": lambda np, x: np.sum(np.abs(np.fft.ifft2(x * W, axes=(1, 0)))),
    "fftn": lambda np, x: np.sum(np.real(np.fft.fftn(x + 1j * x ** 2) * W)),
    "ifftn": lambda np, x: np.sum(np.abs(np.fft.ifftn(x + 1j * x ** 2))),
    "rfft": lambda np, x: np.sum(np.abs(np.fft.rfft(x, axis=1)) * np.real(W[:, :4])),
    "irfft": lambda np, x: np.sum(np.fft.irfft(x[:, :4] * W[:, :4]) * x),
    "rfft2": lambda np, x: np.sum(np.real(np.fft.rfft2(x) * W[:, :4])),
    "irfft2": lambda np, x: np.sum(np.fft.irfft2(x[:, :4] + 0j) * x),
    "rfftn": lambda np, x: np.sum(np.imag(np.fft.rfftn(x) * W[:, :4])),
    "irfftn": lambda np, x: np.sum(np.fft.irfftn(x[:, :4] * W[:, :4]) ** 2),
    "fftshift": lambda np, x: np.sum(np.fft.fftshift(x) * np.real(W))
    + np.sum(np.fft.ifftshift(x, axes=1) * np.imag(W)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_autograd(name):
    f = CASES[name]
    with jitgrad.execution("interpret"):
        value, g = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    expected_value, expected = autograd.value_and_grad(lambda x: f(anp, x))(X)
    assert value == pytest.approx(expected_value, rel=1e-12)
    numpy.testing.assert_allclose(g, expected, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", ["fft", "rfft", "irfft", "fftshift"])
def test_compiled(name):
    f = CASES[name]
    with jitgrad.execution("interpret"):
        expected = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    value, g = jitgrad.value_and_grad(lambda x: f(np, x))(X)
    assert value == pytest.approx(expected[0], rel=1e-12)
    numpy.testing.assert_allclose(g, expected[1], rtol=1e-11, atol=1e-12)


ODD = {
    "rfft-odd": lambda x: np.sum(np.abs(np.fft.rfft(x)) ** 2 * numpy.arange(4.0)),
    "irfft-odd": lambda x: np.sum(np.fft.irfft(x[:4] * (1 + 2j), n=7) ** 2 * numpy.arange(7.0)),
    "fft-n": lambda x: np.sum(np.abs(np.fft.fft(x, n=10))) + np.sum(np.abs(np.fft.fft(x, n=4))),
    "irfft-forward": lambda x: np.sum(np.fft.irfft(x * 1j, n=12, norm="forward") ** 2),
    "rfft-ortho": lambda x: np.sum(np.abs(np.fft.rfft(x, n=9, norm="ortho"))),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_lengths_and_n(name):
    with jitgrad.execution("interpret"):
        check_grads(ODD[name], rng.standard_normal(7))


def test_second_order():
    f = lambda x: np.sum(np.abs(np.fft.fft(x)) ** 2)  # noqa: E731  (Parseval: n |x|^2)
    x = rng.standard_normal(5)
    with jitgrad.execution("interpret"):
        h = jitgrad.hessian(f)(x)
    numpy.testing.assert_allclose(h, 2 * 5 * numpy.eye(5), atol=1e-10)


def test_plain_arrays_and_unsupported_names():
    numpy.testing.assert_allclose(np.fft.fft(X), numpy.fft.fft(X))
    assert np.fft.fftfreq(4).tolist() == numpy.fft.fftfreq(4).tolist()
    with pytest.raises(jitgrad.TracingError, match=r"numpy\.fft\.hfft is not supported"):
        jitgrad.grad(lambda x: np.sum(np.fft.hfft(x)))(X[0])
