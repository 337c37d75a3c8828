"""The examples from autograd's documentation, with only the import lines changed."""

import numpy
import pytest

import jitgrad.numpy as np
from jitgrad import grad, jit_grad, value_and_grad


def test_tanh_derivative():
    def tanh(x):
        y = np.exp(-2.0 * x)
        return (1.0 - y) / (1.0 + y)

    d = grad(tanh)(1.0)
    assert isinstance(d, float)
    assert d == pytest.approx(0.419974341614026, abs=1e-15)


def test_partial_derivatives_of_two_scalars():
    def f(x, y):
        return np.sin(x * y) + np.cos(x * y)

    x, y = 2.0, 3.0
    common = numpy.cos(x * y) - numpy.sin(x * y)
    assert grad(f, 0)(x, y) == pytest.approx(y * common, rel=1e-14)
    assert grad(f, 1)(x, y) == pytest.approx(x * common, rel=1e-14)
    dx, dy = grad(f, (0, 1))(x, y)
    assert (dx, dy) == pytest.approx((y * common, x * common), rel=1e-14)


# The logistic regression example, as in autograd's README: globals read by the loss.
inputs = numpy.array([[0.52, 1.12, 0.77],
                      [0.88, -1.08, 0.15],
                      [0.52, 0.06, -1.30],
                      [0.74, -2.49, 1.39]])
targets = numpy.array([True, True, False, True])


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2.) + 1)


def logistic_predictions(weights, inputs):
    return sigmoid(np.dot(inputs, weights))


def training_loss(weights):
    preds = logistic_predictions(weights, inputs)
    label_probabilities = preds * targets + (1 - preds) * (1 - targets)
    return -np.sum(np.log(label_probabilities))


def test_logistic_regression_training_matches_autograd():
    autograd = pytest.importorskip("autograd")
    import autograd.numpy as anp

    def a_training_loss(weights):
        preds = 0.5 * (anp.tanh(anp.dot(inputs, weights) / 2.) + 1)
        label_probabilities = preds * targets + (1 - preds) * (1 - targets)
        return -anp.sum(anp.log(label_probabilities))

    def train(gradient):
        weights = numpy.array([0.0, 0.0, 0.0])
        for _ in range(100):
            weights -= gradient(weights) * 0.01
        return weights

    ours = train(grad(training_loss))
    theirs = train(autograd.grad(a_training_loss))
    assert training_loss(ours) == pytest.approx(a_training_loss(theirs), abs=1e-9)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_decorator_forms():
    @jit_grad
    def f(x):
        return np.sum(x ** 3)

    @jit_grad(argnum=1)
    def g(a, x):
        return np.sum(a * x ** 2)

    x = numpy.array([1.0, 2.0])
    numpy.testing.assert_allclose(f(x), 3 * x ** 2)
    numpy.testing.assert_allclose(g(3.0, x), 6 * x)


def test_scipy_bfgs_on_rosenbrock_converges():
    optimize = pytest.importorskip("scipy.optimize")

    def rosen(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    x0 = numpy.array([-1.2, 1.0, -0.5, 0.8, 1.3])
    result = optimize.minimize(value_and_grad(rosen), x0, jac=True, method="BFGS",
                               options={"gtol": 1e-8})
    assert result.success, result.message
    numpy.testing.assert_allclose(result.x, numpy.ones(5), atol=1e-5)
