"""Shape-polymorphic kernels: sizes (and float constants) are the kernel's arguments, not its
code, so one compile serves every size that gives the same code.  Each size is still traced on
its own, so what a kernel computes at a size is exactly what a kernel specialised to it would:
these tests hold the shared kernel to the IR interpreter at every size, count the compiles, and
check that a changed constant is never served stale."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import compile as jg_compile


@pytest.fixture
def kernels(monkeypatch):
    """The distinct Numba dispatchers the test's signatures ran on."""
    seen = {}
    real = jg_compile.load

    def load(source):
        kernel = real(source)
        seen[id(kernel)] = kernel
        return kernel

    monkeypatch.setattr(jg_compile, "load", load)
    return seen


def _compiles(kernels) -> int:
    """How many times Numba compiled (or loaded from its disk cache) one of them."""
    return sum(len(k.signatures) for k in kernels.values())


def _slices(x):
    return np.sum(np.tanh(x[1:] * x[:-1]) ** 2) + x[-1] * x[0] + np.sum(x[2:] * x[:-2])


def _strided(x):
    return np.sum(np.sin(x[::2])) + np.sum(x[::-1] * np.arange(x.shape[0]))


def _statistics(x):
    return np.mean(x ** 2) + np.var(x) + np.std(x, ddof=1) + np.sum(x) / x.shape[0]


def _matrices(x):
    A = np.outer(x, x[::-1])
    return np.sum(np.tanh(A @ x)) + np.sum(A.T * A) + np.sum(np.max(A, axis=1))


def _reshapes(x):
    n = x.shape[0]
    M = np.reshape(np.concatenate([x, x]), (2, n))
    return np.sum(M[1] * np.cumsum(M[0])) + np.sum(np.exp(-M.T ** 2).reshape(-1))


def _loop(x):
    def body(i, acc):
        return acc * 0.9 + np.sum(np.sin(x * i))

    return jitgrad.fori_loop(0, 3, body, 0.0) + np.sum(x)


def _while(x):
    s, y = 0.0, x
    while np.sum(y * y) > 0.01:
        y = y * 0.5
        s = s + np.sum(np.cos(y))
    return s


FUNCTIONS = [_slices, _strided, _statistics, _matrices, _reshapes, _loop, _while]
SIZES = [5, 6, 7, 9, 12]


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.__name__.strip("_"))
def test_one_kernel_serves_every_size_and_agrees_with_the_interpreter(f, kernels):
    rng = numpy.random.default_rng(len(f.__name__))
    for n in SIZES:
        x = rng.uniform(-1.0, 1.0, n)
        before = x.copy()
        value, g = jitgrad.value_and_grad(f)(x)
        with jitgrad.execution("interpret"):
            expected_value, expected_g = jitgrad.value_and_grad(f)(x)
        assert value == pytest.approx(expected_value, rel=1e-12, abs=1e-12), n
        numpy.testing.assert_allclose(g, expected_g, rtol=1e-11, atol=1e-12, err_msg=str(n))
        numpy.testing.assert_array_equal(x, before)
    # Sizes that coincide with a constant of the code (5 and a slice's 2, say) may need a
    # kernel of their own; most sizes share one.
    assert len(kernels) <= 2, [jitgrad.explain(f, numpy.ones(n)).lifted for n in SIZES]
    assert _compiles(kernels) == len(kernels)


def test_minibatches_of_every_size_compile_once(kernels):
    rng = numpy.random.default_rng(0)
    W = rng.standard_normal((4, 3))

    def loss(W, X, y):
        z = X @ W
        z = z - np.max(z, axis=1, keepdims=True)
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.mean(np.sum(y * logp, axis=1))

    vg = jitgrad.value_and_grad(loss)
    # The last minibatch of an epoch is ragged.  (A batch of 3 or 4 would coincide with a
    # size of W, and get a kernel of its own.)
    for batch in (32, 32, 17, 50, 7):
        X = rng.standard_normal((batch, 4))
        y = numpy.eye(3)[rng.integers(0, 3, batch)]
        value, g = vg(W, X, y)
        with jitgrad.execution("interpret"):
            expected = jitgrad.value_and_grad(loss)(W, X, y)
        assert value == pytest.approx(expected[0], rel=1e-13)
        numpy.testing.assert_allclose(g, expected[1], rtol=1e-12, atol=1e-14)
    assert len(kernels) == 1 and _compiles(kernels) == 1


def test_minibatches_sliced_at_any_start_share_one_kernel(kernels):
    # autograd's VAE and GAN slice the batch `data[k*b:(k+1)*b]`: a start is named apart from
    # the sizes, so starts that equal a size (k*b = b, or a layer's width) change no code.
    # Only the start 0 is left out of the code, so it gets a kernel of its own.
    rng = numpy.random.default_rng(1)
    data = rng.standard_normal((600, 20))
    W = rng.standard_normal((20, 100)) * 0.1

    def loss(w, k):
        batch = data[k * 100:(k + 1) * 100]
        return np.sum(np.tanh(batch @ w) ** 2) + np.sum(data[k * 100 + 50, 3:5] * w[0, :2])

    g = jitgrad.grad(loss)
    for k in (0, 1, 2, 3, 4, 5, 1):
        batch = data[k * 100:(k + 1) * 100]
        t = numpy.tanh(batch @ W)
        expected = batch.T @ (2 * t * (1 - t ** 2))
        expected[0, :2] += data[k * 100 + 50, 3:5]
        numpy.testing.assert_allclose(g(W, k), expected, rtol=1e-12, atol=1e-14)
    assert len(kernels) == 2 and _compiles(kernels) == 2


def test_sizes_that_coincide_get_their_own_kernel_and_stay_right(kernels):
    # At n = 4 the two sizes are equal, so the code names them once: another kernel, whose
    # numbers are still this trace's own.
    A = numpy.arange(12.0).reshape(4, 3) / 10

    def f(x):
        return np.sum(np.tanh(A @ x[:3]) * x)

    for n in (3, 4, 5, 6):
        x = numpy.linspace(0.1, 1.0, n)
        expected = numpy.zeros(n)
        t = numpy.tanh(A[:, :3] @ x[:3])
        if n == 4:
            expected += t
            expected[:3] += A.T @ ((1 - t ** 2) * x)
            numpy.testing.assert_allclose(jitgrad.grad(f)(x), expected, rtol=1e-12)
        else:
            with pytest.raises(jitgrad.ShapeError):  # (4,) * (n,): the user's shapes, named
                jitgrad.grad(f)(x)


def test_a_changed_float_constant_reuses_the_kernel_with_the_new_value(kernels):
    global SCALE
    SCALE = 0.3
    x = numpy.linspace(-1.0, 1.0, 8)
    f = lambda x: np.sum(SCALE * x ** 2 + np.sin(SCALE * x))  # noqa: E731
    g = jitgrad.grad(f)
    numpy.testing.assert_allclose(g(x), 0.6 * x + 0.3 * numpy.cos(0.3 * x), rtol=1e-14)
    SCALE = 0.7  # a rebound global: traced again, and the same code reads the new number
    numpy.testing.assert_allclose(g(x), 1.4 * x + 0.7 * numpy.cos(0.7 * x), rtol=1e-14)
    assert len(kernels) == 1 and _compiles(kernels) == 1


def test_literal_sizes_on_request(monkeypatch):
    f = lambda x: np.sum(np.exp(x)) / x.shape[0]  # noqa: E731
    shared = jitgrad.explain(f, numpy.ones(5))
    assert "range(N0)" in shared.source and shared.lifted == {"N0": 5, "F0": 0.2}  # 1/n
    monkeypatch.setenv("JITGRAD_LITERAL_SIZES", "1")
    own = jitgrad.explain(f, numpy.ones(5))
    assert "range(5)" in own.source and "N0" not in own.source and not own.lifted
    assert own.path != shared.path
    numpy.testing.assert_allclose(jitgrad.grad(f)(numpy.ones(5) * 2),
                                  numpy.exp(2.0) / 5 * numpy.ones(5), rtol=1e-14)


def test_the_code_never_depends_on_the_sizes_it_does_not_name():
    # The text that keys the kernel is the same for every size that shares it: the comments too
    # (the traced IR in the header, the loop descriptions), else the disk cache would miss.
    f = lambda x: np.sum(np.tanh(x[1:] - x[:-1]) ** 2) + np.mean(x)  # noqa: E731
    sources = {jitgrad.explain(f, numpy.ones(n)).source for n in range(5, 12)}
    assert len(sources) == 1
    (source,) = sources
    for n in range(5, 12):
        assert f"[{n}]" not in source and f"({n}," not in source
