"""Complex numbers, with autograd's conventions: rules are transposes, not conjugate transposes,
and a real value's cotangent is the real part of what reaches it, so the gradient of a real
function of z = x + iy is df/dx - i df/dy.  Checked against autograd and against central
differences (the directional derivative along v is Re(sum(grad * v)) in this convention)."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import TracingError

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

Z = numpy.array([1.0 + 2.0j, -0.5 + 0.3j, 0.2 - 1.1j])
W = numpy.array([0.3, -1.2, 2.0])

# name, loss(np, z, w): real-valued functions of a complex z (and a real w)
LOSSES = [
    ("abs", lambda np, z, w: np.sum(np.abs(z))),
    ("real-imag", lambda np, z, w: np.sum(np.real(z * w) ** 2 - np.imag(z) * w)),
    ("conj", lambda np, z, w: np.sum(np.real(np.conj(z) * z * w))),
    ("angle", lambda np, z, w: np.sum(np.angle(z) * w)),
    ("holomorphic-chain", lambda np, z, w: np.sum(np.abs(np.exp(z * w) * np.sin(z) + z ** 2))),
    ("division-log", lambda np, z, w: np.sum(np.real(np.log(z) / (z + w)))),
    ("sqrt-mixed", lambda np, z, w: np.sum(np.abs(np.sqrt(z) - w * 1j))),
    ("matmul", lambda np, z, w: np.abs(np.dot(z, w * (1 + 1j)))),
]


def _directional_check(f, z, g, eps=1e-6):
    rng = numpy.random.default_rng(0)
    for _ in range(3):
        v = rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape)
        numeric = (f(z + eps * v) - f(z - eps * v)) / (2 * eps)
        assert numpy.real(numpy.sum(g * v)) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("execution", ["interpret", "compile"])
@pytest.mark.parametrize("name,loss", LOSSES, ids=[n for n, _ in LOSSES])
def test_gradient_of_a_real_function_of_complex_arrays(name, loss, execution):
    f = lambda z, w: loss(np, z, w)  # noqa: E731
    with jitgrad.execution(execution):
        gz, gw = jitgrad.grad(f, (0, 1))(Z, W)
    az, aw = autograd.grad(lambda z, w: loss(anp, z, w), (0, 1))(Z, W)
    assert gz.dtype == numpy.complex128 and gw.dtype == numpy.float64
    numpy.testing.assert_allclose(gz, az, rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(gw, aw, rtol=1e-12, atol=1e-13)
    _directional_check(lambda z: f(z, W), Z, gz)


def test_types_follow_autograd():
    real = jitgrad.grad(lambda x: np.real(x))
    assert isinstance(real(2.0), float)
    assert isinstance(real(1.0j), complex) and real(1.0j) == 1.0
    assert jitgrad.grad(lambda x: np.real(x * (1 + 2j)))(2.0) == 1.0
    assert jitgrad.grad(lambda z: np.abs(z))(0j) == 0  # autograd's: 0 at 0
    g = jitgrad.grad(lambda z: np.abs(z))(1.1 + 1.2j)
    assert g == pytest.approx(autograd.grad(lambda z: anp.abs(z))(1.1 + 1.2j), rel=1e-14)


def test_holomorphic_grad_is_the_complex_derivative():
    f = lambda z: z ** 2 * np.exp(z)  # noqa: E731
    z = 1.0 + 1.0j
    expected = (2 * z + z ** 2) * numpy.exp(z)
    assert jitgrad.holomorphic_grad(f)(z) == pytest.approx(expected, rel=1e-14)
    with pytest.raises(TracingError, match="complex value.*holomorphic_grad"):
        jitgrad.grad(f)(z)
    with pytest.warns(jitgrad.JitgradWarning, match="holomorphic_grad of a real argument 0"):
        real = jitgrad.holomorphic_grad(lambda x: x ** 3)(2.0)  # as autograd: warns, goes on
    assert real == 12.0


def test_complex_values_and_reductions_in_a_compiled_kernel():
    def f(z):
        s = np.sum(z * z, axis=0)  # a complex sum
        return np.sum(np.abs(s) ** 2) + np.real(np.sum(z)) * 0.5

    z = (numpy.arange(6.0) - 2.0 + 1j * numpy.linspace(-1, 1, 6)).reshape(3, 2)
    value, g = jitgrad.value_and_grad(f)(z)
    assert value == pytest.approx(f(z), rel=1e-13)
    a = autograd.grad(lambda z: anp.sum(anp.abs(anp.sum(z * z, axis=0)) ** 2)
                      + anp.real(anp.sum(z)) * 0.5)(z)
    numpy.testing.assert_allclose(g, a, rtol=1e-12)
    assert not numpy.iscomplexobj(z.real) and z.dtype == numpy.complex128  # not modified


def test_second_order_through_complex_values():
    # d/dx of Re(grad f) for f(x) = |x (1 + 2j)|^2 = 5 x^2: d2f/dx2 = 10.
    f = lambda x: np.abs(x * (1 + 2j)) ** 2  # noqa: E731
    assert jitgrad.grad(jitgrad.grad(f))(0.7) == pytest.approx(10.0, rel=1e-12)
