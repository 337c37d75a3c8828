"""Multi-core nests (codegen's numba.prange over chunks of rows): the same values as the serial
kernels up to the reordering of sums, bit for bit the same on one thread as on several, and safe
in a process forked from one that has run them."""

import os
import subprocess
import sys

import numba
import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import codegen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def small_threshold(monkeypatch):
    """Parallel nests from 64 iterations on, so that small arrays (cheap compiles) take them."""
    monkeypatch.setattr(codegen, "PARALLEL_MIN_ELEMENTS", 64)
    monkeypatch.delenv("JITGRAD_PARALLEL", raising=False)
    if not codegen.parallel_enabled():
        pytest.skip("one core: no parallel nests")


# Every kind of sink a parallel nest has: stores, a sum and a max over everything, sums over the
# rows into an array (per-chunk partials), sums that keep the rows, keepdims, integer counts.
FUNCTIONS = {
    "store-and-sum": lambda x: np.sum(np.sin(x) * np.exp(-x * x) + np.log1p(x * x)),
    "axis-0": lambda x: np.sum(np.sum(np.tanh(x), axis=0) ** 2) + np.max(x),
    "axis-1": lambda x: np.sum(np.log(np.sum(np.exp(x), axis=1))),
    "keepdims": lambda x: np.sum(x / np.sum(x * x, axis=0, keepdims=True)),
    "max-min": lambda x: np.max(x * x) - np.min(np.cos(x)) + np.sum(np.maximum(x, 0.1)),
}


def _value_and_grad(fun, x):
    """A new kernel each time: kernels are kept per function (and outlive option changes)."""
    return jitgrad.value_and_grad(lambda x: fun(x))(x)


def _on_one_thread(fun, x):
    """`_value_and_grad` with Numba's thread count set to 1."""
    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return _value_and_grad(fun, x)
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_parallel_kernels_are_the_serial_ones(small_threshold, monkeypatch, name):
    fun = FUNCTIONS[name]
    x = numpy.random.RandomState(3).uniform(0.5, 1.5, (67, 5))  # 67 rows: uneven chunks
    source = jitgrad.explain(fun, x).source
    assert "numba.prange" in source and "parallel=True" in source, source
    value, grad = _value_and_grad(fun, x)
    monkeypatch.setenv("JITGRAD_PARALLEL", "0")
    serial_source = jitgrad.explain(fun, x).source
    assert "prange" not in serial_source and "parallel=True" not in serial_source
    serial_value, serial_grad = _value_and_grad(fun, x)
    with jitgrad.execution("interpret"):
        reference = _value_and_grad(fun, x)
    for v, g in ((serial_value, serial_grad), reference):  # equal up to the sums' rounding
        numpy.testing.assert_allclose(value, v, rtol=1e-13)
        numpy.testing.assert_allclose(grad, g, rtol=1e-12, atol=1e-14 * abs(g).max())


def test_one_thread_gives_the_same_bits(small_threshold):
    """The chunks do not depend on the thread count, so neither does any rounding."""
    fun = FUNCTIONS["axis-0"]
    x = numpy.random.RandomState(4).standard_normal((200, 3))
    many, one = _value_and_grad(fun, x), _on_one_thread(fun, x)
    assert many[0] == one[0] and numpy.array_equal(many[1], one[1])


def test_small_problems_keep_their_serial_kernels():
    x = numpy.ones(1000)
    source = jitgrad.explain(FUNCTIONS["store-and-sum"], x).source
    assert "prange" not in source and "parallel=True" not in source


@pytest.mark.parametrize("env", [{"JITGRAD_PARALLEL": "0"}, {"NUMBA_NUM_THREADS": "1"},
                                 {"NUMBA_THREADING_LAYER": "workqueue"}])
def test_settings_that_turn_parallel_nests_off(small_threshold, monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    source = jitgrad.explain(FUNCTIONS["axis-1"], numpy.ones((100, 4))).source
    assert "prange" not in source and "parallel=True" not in source


def test_the_workqueue_layer_is_not_entered_from_kernels():
    """workqueue must not be entered by two threads at once: kernels compiled for another
    setting then run their chunks on the calling thread."""
    code = ("from jitgrad import _jit; _jit.ready(); from jitgrad import runtime; "
            "print(runtime._THREADS_OK.value)")
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "0", out.stdout + out.stderr


GATHERS = {
    # Shifted slices scatter into shifted elements; written as a gather over the buffer, each
    # row writes only its own element, so the interior segment runs in chunks.
    "shifted": lambda x: np.sum(np.exp(-(x[1:] - x[:-1] ** 2) ** 2) + (1.0 - x[:-1]) ** 2),
    "stencil-2d": lambda x: np.sum(np.tanh(x[1:, 1:] - x[:-1, :-1] ** 2)) + np.max(x[1:, :]),
}


@pytest.mark.parametrize("name", list(GATHERS))
def test_gathers_run_their_interior_in_chunks(small_threshold, monkeypatch, name):
    fun = GATHERS[name]
    x = numpy.random.RandomState(5).uniform(-1, 1, (500,) if name == "shifted" else (90, 7))
    source = jitgrad.explain(fun, x).source
    assert "as a gather" in source and "numba.prange" in source, source
    value, grad = _value_and_grad(fun, x)
    monkeypatch.setenv("JITGRAD_PARALLEL", "0")
    serial = _value_and_grad(fun, x)
    with jitgrad.execution("interpret"):
        reference = _value_and_grad(fun, x)
    for v, g in (serial, reference):
        numpy.testing.assert_allclose(value, v, rtol=1e-13)
        numpy.testing.assert_allclose(grad, g, rtol=1e-12, atol=1e-14 * abs(g).max())
    monkeypatch.delenv("JITGRAD_PARALLEL")
    one = _on_one_thread(fun, x)
    assert value == one[0] and numpy.array_equal(grad, one[1])


def test_nests_that_only_add_and_multiply_stay_serial(small_threshold):
    """Bound by memory: a second core does not help (Rosenbrock's gradient)."""
    fun = lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)  # noqa
    assert "prange" not in jitgrad.explain(fun, numpy.linspace(-1, 1, 500)).source


def test_a_kernel_calling_blas_keeps_its_nests_serial(small_threshold):
    """BLAS runs threads of its own, at half speed on cores where OpenMP's spin."""
    w = numpy.random.RandomState(6).standard_normal((7, 9))
    fun = lambda x: np.sum(np.tanh(x @ w) ** 2) + np.sum(np.exp(x))  # noqa: E731
    x = numpy.random.RandomState(7).standard_normal((200, 7))
    assert "prange" not in jitgrad.explain(fun, x).source
    assert "prange" in jitgrad.explain(lambda x: np.sum(np.exp(x)), x).source


def test_a_scatter_that_is_not_a_gather_stays_serial(small_threshold):
    """A stepped slice's adjoint scatters into every other element: no chunks."""
    fun = lambda x: np.sum(np.sin(x[::2]) * x[1::2])  # noqa: E731
    x = numpy.linspace(-1, 1, 600)
    nests = [line for line in jitgrad.explain(fun, x).source.splitlines()
             if "# loop over" in line and "add_into" in line]
    assert nests and not any("chunks" in line for line in nests), nests
    value, grad = _value_and_grad(fun, x)
    with jitgrad.execution("interpret"):
        expected = _value_and_grad(fun, x)
    numpy.testing.assert_allclose(grad, expected[1], rtol=1e-12)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_runs_parallel_kernels_on_one_thread():
    """GNU OpenMP aborts a forked child that starts its threads again: the child runs the same
    chunks serially, and gets the same bits."""
    code = """
import os, numpy, jitgrad, jitgrad.numpy as np
from jitgrad import codegen
codegen.PARALLEL_MIN_ELEMENTS = 64
g = jitgrad.grad(lambda x: np.sum(np.sin(x) ** 2))
x = numpy.linspace(0, 1, 5000)
with jitgrad.execution("compile"):
    assert "prange" in jitgrad.explain(lambda x: np.sum(np.sin(x) ** 2), x).source
    a = g(x)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if numpy.array_equal(a, g(x)) else 3)
    print(os.waitpid(pid, 0)[1])
"""
    if not codegen.parallel_enabled():
        pytest.skip("one core: no parallel nests")
    env = {k: v for k, v in os.environ.items() if k != "JITGRAD_PARALLEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", out.stdout + out.stderr
