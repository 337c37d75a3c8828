"""Tiered execution (execution mode "auto", the users' default): a new signature runs with the
IR interpreter until its calls have taken api.TIER_SECONDS, then compiles; a kernel already in
the disk cache is used at once.  The tiers agree to rounding and never serve a stale result."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import api
from jitgrad import compile as jg_compile

X = numpy.linspace(-1.0, 2.0, 7)


def test_interpreted_first_then_compiled(monkeypatch, loads):
    monkeypatch.setattr(api, "TIER_SECONDS", 0.0)  # compile after the first call

    def f(x):
        return np.sum(np.tanh(x) * x ** 3) + np.max(x)

    before = jitgrad.tier_stats()
    with jitgrad.execution("auto"):
        vg = jitgrad.value_and_grad(f)
        first = vg(X)
        assert jitgrad.tier_stats()["interpreted calls"] == before["interpreted calls"] + 1
        assert len(loads) == 1  # chosen for compiling after that call, compiled at the next
        second, third = vg(X), vg(X)
    after = jitgrad.tier_stats()
    assert after["interpreted calls"] == before["interpreted calls"] + 1
    assert after["compiled after interpreting"] == before["compiled after interpreting"] + 1
    with jitgrad.execution("compile"):
        expected = jitgrad.value_and_grad(f)(X)
    for value, grad in (first, second, third):
        assert value == pytest.approx(expected[0], rel=1e-13)
        numpy.testing.assert_allclose(grad, expected[1], rtol=1e-13)


def test_a_short_run_never_compiles(monkeypatch, loads):
    monkeypatch.setattr(api, "TIER_SECONDS", 3600.0)

    def g(x):
        return np.sum(np.sin(x) ** 2)

    with jitgrad.execution("auto"):
        grads = [jitgrad.grad(g)(X * k) for k in range(5)]
    assert not loads
    for k, grad in enumerate(grads):
        numpy.testing.assert_allclose(grad, numpy.sin(2 * X * k), rtol=1e-13, atol=1e-15)


def test_a_kernel_in_the_disk_cache_is_used_at_once(monkeypatch, loads):
    monkeypatch.setattr(api, "TIER_SECONDS", 3600.0)
    source = "def h(x):\n    return np.sum(np.exp(x) * x)\n"
    first, second = {}, {}
    exec(source, {"np": np}, first)
    exec(source, {"np": np}, second)  # the same code, another function: the same kernel
    with jitgrad.execution("compile"):
        jitgrad.grad(first["h"])(X)
    before = jitgrad.tier_stats()["interpreted calls"]
    with jitgrad.execution("auto"):
        numpy.testing.assert_allclose(jitgrad.grad(second["h"])(X), numpy.exp(X) * (1 + X),
                                      rtol=1e-13)
    assert jitgrad.tier_stats()["interpreted calls"] == before
    assert len(loads) == 2 and loads[0] == loads[1]


@pytest.fixture
def generated(monkeypatch):
    """As in a new process, Numba not started (so no kernel can be used at once); and the
    kernel sources generated during the test."""
    from jitgrad import codegen

    monkeypatch.setattr(api._jit, "is_ready", lambda: False)
    seen = []
    real = codegen.generate
    monkeypatch.setattr(codegen, "generate",
                        lambda *a, **k: seen.append(1) or real(*a, **k))
    return seen


def sweep_loss(x):
    return np.sum(np.tanh(x) ** 2 + 0.5 * x ** 4) / x.shape[0]


def test_a_sweep_of_sizes_interpreted_generates_no_kernel(monkeypatch, generated, loads):
    # Each size is called once: interpreting it costs less than any kernel's price, so no
    # source is generated (the codegen would be most of the call's time).
    with jitgrad.execution("auto"):
        got = [jitgrad.value_and_grad(sweep_loss)(numpy.linspace(-1, 1, n)) for n in range(4, 9)]
    assert not generated and not loads
    with jitgrad.execution("interpret"):
        for n, (value, grad) in zip(range(4, 9), got):
            expected = jitgrad.value_and_grad(sweep_loss)(numpy.linspace(-1, 1, n))
            assert value == expected[0]
            numpy.testing.assert_array_equal(grad, expected[1])


def test_a_deferred_kernel_gets_its_sizes_when_it_compiles(monkeypatch, generated, loads):
    # The source (and with it the sizes the kernel reads from its `lifted` argument) is made
    # when interpreting has cost the least price; the compiled kernel then gets those sizes,
    # on the fast path, the slow path and a make_vjp made before the switch.
    monkeypatch.setattr(api, "TIER_SECONDS", 0.0)

    def f(x, scale=3.7):
        return np.sum(np.tanh(x[1:] * scale) * x[:-1] ** 3)

    x = numpy.linspace(-1.0, 2.0, 6)
    with jitgrad.execution("compile"):
        expected = jitgrad.value_and_grad(f)(x)
        vjp_expected = jitgrad.make_vjp(f)(x)[0](2.0)
    generated.clear(), loads.clear()
    with jitgrad.execution("auto"):
        vg = jitgrad.value_and_grad(f)
        vjp, value = jitgrad.make_vjp(f)(x)
        got = [vg(x), vg(x), vg(x), vg(x, scale=3.7), vg(x, scale=3.7)]
        vjps = [vjp(2.0), vjp(2.0), vjp(2.0)]
    assert len(loads) >= 2 and len(generated) == len(loads)
    assert value == pytest.approx(expected[0], rel=1e-13)
    for v, g in got:
        assert v == pytest.approx(expected[0], rel=1e-13)
        numpy.testing.assert_allclose(g, expected[1], rtol=1e-13)
    for g in vjps:
        numpy.testing.assert_allclose(g, vjp_expected, rtol=1e-13)


def test_a_kernel_that_fails_to_compile_after_interpreting_keeps_the_interpreter(monkeypatch):
    import numba

    monkeypatch.setattr(api, "TIER_SECONDS", 0.0)

    def broken(*args):
        raise numba.core.errors.TypingError("a typing error in the generated kernel")

    broken.py_func = broken
    monkeypatch.setattr(jg_compile, "load", lambda source: broken)

    def f(x):
        return np.sum(np.sin(x) * x)

    expected = numpy.sin(X) + X * numpy.cos(X)
    with jitgrad.execution("auto"):
        g = jitgrad.grad(f)
        numpy.testing.assert_allclose(g(X), expected, rtol=1e-14)  # interpreted, then "compiled"
        with pytest.warns(jitgrad.JitgradWarning, match="compiling its kernel failed.*typing"):
            numpy.testing.assert_allclose(g(X), expected, rtol=1e-14)
        numpy.testing.assert_allclose(g(X), expected, rtol=1e-14)
        vjp, value = jitgrad.make_vjp(lambda x: np.sin(x) * 2.0)(X)
        with pytest.warns(jitgrad.JitgradWarning, match="compiling its kernel failed"):
            numpy.testing.assert_allclose(vjp(numpy.ones(7)), 2 * numpy.cos(X), rtol=1e-14)
        numpy.testing.assert_allclose(vjp(numpy.ones(7)), 2 * numpy.cos(X), rtol=1e-14)
    with jitgrad.execution("compile"):  # compiling at once has no tier to fall back on
        with pytest.raises(jitgrad.JitgradInternalError, match="could not compile"):
            jitgrad.grad(lambda x: np.sum(np.cos(x)))(X)


def test_sizes_that_share_a_kernel_share_the_time_towards_compiling_it(monkeypatch, loads):
    # Every interpreted call "takes" 0.15 s; the price of compiling is 1 s.  Two calls at each of
    # four sizes (0.3 s each) compile the one kernel they share, after the seventh call; a
    # function of another structure (rank 2) keeps its own account.
    import types

    clock = iter(range(10**6))
    monkeypatch.setattr(api, "time", types.SimpleNamespace(
        perf_counter=lambda: 0.15 * next(clock)))
    monkeypatch.setattr(api, "compile_seconds", lambda lines: 1.0)

    def f(x):
        return np.sum(np.cos(x) * x)

    calls = [numpy.linspace(0.0, 1.0, n) for n in (5, 6, 7, 8) for _ in range(2)]
    with jitgrad.execution("auto"):
        g = jitgrad.grad(f)
        got = [g(x) for x in calls]
        other = g(numpy.ones((2, 3)))
        kernels = [e.kernel for e in g._jitgrad._entries.values()]  # n = 5, 6, 7, 8; 2x3
    assert len(loads) == 1  # after 7 calls (1.05 s): the 8th runs compiled
    assert [isinstance(k, api._Tiered) for k in kernels] == [True, True, True, False, True]
    assert kernels[0].account is kernels[1].account is kernels[2].account
    assert kernels[4].account is not kernels[0].account
    numpy.testing.assert_allclose(other, numpy.cos(1.0) - numpy.sin(1.0), rtol=1e-13)
    for x, grad in zip(calls, got):
        numpy.testing.assert_allclose(grad, numpy.cos(x) - x * numpy.sin(x), rtol=1e-13)


def test_a_structure_is_priced_once(monkeypatch, generated, loads):
    # Calls "take" 0.15 s; compiling would take 100 s.  After the lower bound (0.5 s), one size
    # generates its source to price the kernel; the other sizes take that price and generate
    # nothing: a sweep of distinct signatures pays for codegen once, not per size.
    import types

    clock = iter(range(10**6))
    monkeypatch.setattr(api, "time", types.SimpleNamespace(
        perf_counter=lambda: 0.15 * next(clock)))
    monkeypatch.setattr(api, "compile_seconds", lambda lines: 100.0)
    with jitgrad.execution("auto"):
        g = jitgrad.value_and_grad(sweep_loss)
        for n in range(4, 14):
            g(numpy.linspace(-1, 1, n))
    assert len(generated) == 1 and not loads


SCALE = 2.0


def test_no_stale_result_across_the_switch(monkeypatch):
    global SCALE
    monkeypatch.setattr(api, "TIER_SECONDS", 0.0)

    def scaled(x):
        return np.sum(x ** 2) * SCALE

    with jitgrad.execution("auto"):
        g = jitgrad.grad(scaled)
        numpy.testing.assert_allclose(g(X), 4 * X)  # interpreted
        SCALE = 3.0
        numpy.testing.assert_allclose(g(X), 6 * X)  # traced again: interpreted again
        numpy.testing.assert_allclose(g(X), 6 * X)  # compiled
        SCALE = 5.0
        numpy.testing.assert_allclose(g(X), 10 * X)
    SCALE = 2.0


def test_modes_are_named():
    with pytest.raises(jitgrad.ArgumentError, match="'auto', 'compile', 'interpret'"):
        with jitgrad.execution("fast"):
            pass


NEW_PROCESS = """
import sys, numpy, jitgrad, jitgrad.numpy as np
assert "numba" not in sys.modules, "import jitgrad imported Numba"
f = lambda x: np.sum(np.tanh(x) * x ** 2)
g = jitgrad.grad(f)(numpy.linspace(-1.0, 1.0, 9))
print("numba" in sys.modules, jitgrad.tier_stats()["interpreted calls"])
for _ in range(3):
    g2 = jitgrad.grad(f)(numpy.linspace(-1.0, 1.0, 9))
assert numpy.allclose(g, g2, rtol=1e-13)
print("numba" in sys.modules, jitgrad.tier_stats()["compiled after interpreting"])
if sys.argv[1] == "late import":  # a family module imported after Numba has started
    import jitgrad.scipy.signal as signal
    with jitgrad.execution("compile"):
        h = jitgrad.grad(lambda a: np.sum(signal.convolve(a, numpy.ones(3)) ** 2))(numpy.ones(4))
    print(h.tolist())
if sys.argv[1] == "vjp":  # make_vjp, and check_grads (autograd's examples call it), interpreted
    from jitgrad.test_util import check_grads
    check_grads(f, modes=["rev"])(numpy.linspace(-1.0, 1.0, 9))
    vjp, _ = jitgrad.make_vjp(f)(numpy.ones(3))
    print("numba" in sys.modules, vjp(1.0).tolist())
"""


def _new_process(tmp_path, *argv, **env):
    import os
    import subprocess
    import sys

    path = tmp_path / "new_process.py"
    path.write_text(NEW_PROCESS)
    environment = dict(os.environ, JITGRAD_CACHE_DIR=str(tmp_path / "cache"), **env)
    environment.pop("JITGRAD_EXECUTION")  # auto, the users' default
    done = subprocess.run([sys.executable, str(path), *argv], capture_output=True, text=True,
                          env=environment)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def test_numba_starts_only_when_a_kernel_is_needed(tmp_path):
    # A short script is interpreted from start to end: Numba is never imported.
    assert _new_process(tmp_path, "-", JITGRAD_TIER_SECONDS="3600") == ["False 1", "False 0"]
    out = _new_process(tmp_path, "vjp", JITGRAD_TIER_SECONDS="3600")
    assert out[:2] == ["False 1", "False 0"] and out[2].startswith("False [")
    numpy.testing.assert_allclose(eval(out[2][len("False "):]), numpy.tanh(1.0) * 2 + (
        1 - numpy.tanh(1.0) ** 2), rtol=1e-13)
    # Compiling after the first call: Numba starts then, and a family module imported later
    # gets its Numba functions made at once (convolve's kernel is called from the new kernel).
    out = _new_process(tmp_path, "late import", JITGRAD_TIER_SECONDS="0")
    assert out[:2] == ["True 1", "True 1"]  # (loaded at the end of the first call)
    conv = numpy.array([[1.0 if 0 <= i - j < 3 else 0.0 for j in range(4)] for i in range(6)])
    numpy.testing.assert_allclose(eval(out[2]), 2 * conv.T @ (conv @ numpy.ones(4)))


def test_a_new_process_interprets_before_starting_numba_for_a_cached_kernel(tmp_path):
    _new_process(tmp_path, "-", JITGRAD_TIER_SECONDS="0")  # fills the disk cache
    # In a new process the kernel is on disk, but Numba's start-up (about 0.5 s) is paid only
    # after interpreting has cost JITGRAD_TIER_START_SECONDS: here 1 hour, then 0.
    assert _new_process(tmp_path, "-", JITGRAD_TIER_START_SECONDS="3600") == ["False 1",
                                                                            "False 0"]
    assert _new_process(tmp_path, "-", JITGRAD_TIER_START_SECONDS="0") == ["True 1", "True 1"]


def test_a_long_kernel_is_compiled_only_after_as_much_interpreting(monkeypatch, loads):
    def f(x):
        return np.sum(np.cos(x) * x ** 2)

    estimate = api.compile_seconds
    monkeypatch.setattr(api, "TIER_SECONDS", 1e-7)  # 0.1 µs per second of estimated compile
    monkeypatch.setattr(api, "compile_seconds", lambda lines: 1e6)  # a kernel of days
    with jitgrad.execution("auto"):
        for _ in range(3):
            jitgrad.grad(f)(X)
    assert not loads  # 0.1 s of interpreting buy this compile
    monkeypatch.setattr(api, "compile_seconds", lambda lines: 0.5)  # under 1 s: counts as 1 s
    x = X[:5] + 1.0  # a new signature
    with jitgrad.execution("auto"):
        for _ in range(3):
            numpy.testing.assert_allclose(jitgrad.grad(f)(x), 2 * x * numpy.cos(x)
                                          - x ** 2 * numpy.sin(x), rtol=1e-13)
    assert len(loads) == 1
    # The estimate itself: the measured growth (about the square of the length).
    assert estimate(150) < 1.0 < estimate(600) < 5.0
    assert 60.0 < estimate(5000) < 200.0


def test_library_calls_do_not_count_towards_compiling(monkeypatch, loads):
    # Matrix products run the same BLAS interpreted or compiled: what the interpreted tier
    # adds up towards the price of compiling is the rest of the call (autograd's GAN example is
    # 80% products: compiling its kernels cost more than they saved).
    monkeypatch.setattr(api, "TIER_SECONDS", 3600.0)
    rng = numpy.random.default_rng(0)
    a, w = rng.standard_normal((300, 300)), rng.standard_normal((300, 300))

    def f(w):
        return np.sum(np.tanh(a @ w @ a))

    import time

    with jitgrad.execution("auto"):
        g = jitgrad.grad(f)
        g(w)
        start = time.perf_counter()
        for _ in range(3):
            got = g(w)
        elapsed = time.perf_counter() - start
    (account,) = g._jitgrad._accounts.values()
    assert 0 < account.spent < 0.5 * elapsed * 4 / 3  # 4 calls, 3 timed
    inner = a @ w @ a
    numpy.testing.assert_allclose(got, a.T @ (1 - numpy.tanh(inner) ** 2) @ a.T, rtol=1e-12,
                                  atol=1e-12)
    assert not loads
