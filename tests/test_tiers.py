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


@pytest.fixture
def loads(monkeypatch):
    """The kernels loaded (compiled or read from the disk cache) during the test."""
    seen = []
    real = jg_compile.load
    monkeypatch.setattr(jg_compile, "load", lambda source: seen.append(source) or real(source))
    return seen


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
