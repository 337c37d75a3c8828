"""Kernels compiled by a worker process (jitgrad/compile_worker.py) while the interpreted tier
runs: the worker types the kernel exactly as the call will, this process then loads it from the
disk cache without compiling, and a worker that fails, hangs or outlives its process changes no
result."""

import os
import subprocess
import sys
import textwrap
import time

import numba
import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import api, compile_worker
from jitgrad import compile as jg_compile

X = numpy.linspace(-1.0, 2.0, 7)


@pytest.fixture
def worker_tier(monkeypatch):
    """Execution mode "auto" with workers on (the tests' default is off, see conftest), a new
    kernel handed to a worker after its first interpreted call."""
    monkeypatch.setenv("JITGRAD_COMPILE_WORKER", "1")
    monkeypatch.setattr(api, "TIER_SECONDS", 0.0)
    with jitgrad.execution("auto"):
        yield


def _until_compiled(f, x, limit=600):
    """Call f(x) until its kernel is no longer interpreted; the results, and the calls taken."""
    before = jitgrad.tier_stats()["compiled after interpreting"]
    results = []
    for calls in range(1, limit):
        results.append(f(x))
        if jitgrad.tier_stats()["compiled after interpreting"] > before:
            results.append(f(x))  # the first call of the loaded kernel
            return results, calls
        time.sleep(0.01)
    raise AssertionError("the worker never finished")


def test_proxies_type_as_the_arguments_do():
    base = numpy.arange(24.0).reshape(4, 6)
    readonly = base.copy()
    readonly.flags.writeable = False
    values = [base, base.T, base[:, ::2], base[::2], numpy.float32(base), readonly,
              numpy.zeros((), numpy.complex128), numpy.ones(1), numpy.ones((1, 5)), base[:1],
              numpy.arange(5), numpy.ones(3, bool)[::2], 1.5, 3, True, 2j, numpy.float32(2.0),
              (1, 2.5, numpy.int64(3)), ()]
    for value in values:
        assert numba.typeof(compile_worker._proxy(value)) == numba.typeof(value), value
    with pytest.raises(TypeError):
        compile_worker._proxy(["a list"])
    assert compile_worker.portable("import numpy as np\nfrom jitgrad import runtime\n")
    assert not compile_worker.portable("import jitgrad.extend as m_jitgrad_extend\n")
    assert not compile_worker.portable("import mymodule as m_mymodule\n")


def test_a_worker_compiles_and_this_process_only_loads(worker_tier, loads):
    def f(x):
        return np.sum(np.sin(x) * x ** 2 + np.exp(-x))

    expected = 2 * X * numpy.sin(X) + X ** 2 * numpy.cos(X) - numpy.exp(-X)
    before = jitgrad.tier_stats()["compiled in a worker process"]
    results, calls = _until_compiled(jitgrad.grad(f), X)
    assert jitgrad.tier_stats()["compiled in a worker process"] == before + 1
    assert calls > 1  # interpreted while the worker compiled
    for g in results:
        numpy.testing.assert_allclose(g, expected, rtol=1e-13)
    (source,) = loads
    kernel = jg_compile._LOADED[jg_compile.kernel_path(source)]
    assert kernel.stats.cache_hits and not kernel.stats.cache_misses  # loaded, not compiled


def test_a_failing_worker_warns_and_the_kernel_is_compiled_here(worker_tier, monkeypatch,
                                                                 tmp_path, loads):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'numba.core.errors.TypingError: no such thing' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(compile_worker.sys, "executable", str(fake))

    def f(x):
        return np.sum(np.cos(x) * x ** 3)

    with pytest.warns(jitgrad.JitgradWarning, match="worker process failed.*TypingError: no "
                                                    "such thing.*compiled in this process"):
        results, _ = _until_compiled(jitgrad.grad(f), X)
    for g in results:
        numpy.testing.assert_allclose(g, 3 * X ** 2 * numpy.cos(X) - X ** 3 * numpy.sin(X),
                                      rtol=1e-13)
    assert loads  # compiled in this process instead


def test_a_hung_worker_is_stopped(worker_tier, monkeypatch, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    monkeypatch.setattr(compile_worker.sys, "executable", str(fake))
    monkeypatch.setattr(api, "compile_seconds", lambda lines: -5.95)  # a timeout of 0.5 s

    def f(x):
        return np.sum(np.tanh(x) * x)

    with pytest.warns(jitgrad.JitgradWarning, match="took too long and was stopped"):
        results, _ = _until_compiled(jitgrad.grad(f), X)
    t = numpy.tanh(X)
    for g in results:
        numpy.testing.assert_allclose(g, t + X * (1 - t ** 2), rtol=1e-13)
    assert not compile_worker._RUNNING


def test_workers_end_with_their_process(tmp_path):
    # The process exits while its worker compiles: the worker is stopped, and the next process
    # finds a cache that works (the kernel compiled again, or loaded if the worker had finished).
    script = tmp_path / "exits.py"
    script.write_text(textwrap.dedent("""
        import sys, numpy, jitgrad, jitgrad.numpy as np
        from jitgrad import compile_worker
        f = jitgrad.grad(lambda x: np.sum(np.sinh(x) * x ** 2))
        x = numpy.linspace(0.0, 1.0, 5)
        for _ in range(3):
            g = f(x)
        print(" ".join(str(w.process.pid) for w in compile_worker._RUNNING))
        print(repr(g.tolist()))
    """))
    env = dict(os.environ, JITGRAD_CACHE_DIR=str(tmp_path / "cache"), JITGRAD_EXECUTION="auto",
               JITGRAD_COMPILE_WORKER="1", JITGRAD_TIER_SECONDS="0")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    pids, first = done.stdout.split("\n")[:2]
    assert pids  # a worker was running at the exit
    for pid in map(int, pids.split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    env.update(JITGRAD_EXECUTION="compile")
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    numpy.testing.assert_allclose(eval(again.stdout.split("\n")[1]), eval(first), rtol=1e-13)
