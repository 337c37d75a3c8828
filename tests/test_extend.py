"""jitgrad.extend: primitives with user-defined VJPs (autograd.extend's API), compiled natively
or as callbacks, differentiated to second order, never confused with one another, never stale."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import TracingError
from jitgrad.extend import defvjp, defvjp_argnum, primitive

autograd = pytest.importorskip("autograd")


def _lse(x):
    m = numpy.max(x)
    return m + numpy.log(numpy.sum(numpy.exp(x - m)))


logsumexp = primitive(_lse)
defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

Y = numpy.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("execution", ["interpret", "compile"])
def test_define_gradient_example(execution):
    # autograd's examples/define_gradient.py, with the imports changed.
    def example_func(y):
        z = y ** 2
        lse = logsumexp(z)
        return np.sum(lse)

    with jitgrad.execution(execution):
        g = jitgrad.grad(example_func)(Y)
    z = Y ** 2
    expected = 2 * Y * numpy.exp(z - _lse(z))
    numpy.testing.assert_allclose(g, expected, rtol=1e-13)
    assert logsumexp(Y) == _lse(Y)  # on plain values: the function itself


@pytest.mark.parametrize("execution", ["interpret", "compile"])
def test_second_order_through_the_users_vjp(execution):
    with jitgrad.execution(execution):
        h = jitgrad.hessian(lambda y: logsumexp(y))(Y)
    p = numpy.exp(Y - _lse(Y))
    numpy.testing.assert_allclose(h, numpy.diag(p) - numpy.outer(p, p), atol=1e-14)


@primitive
def scaled_power(a, k, power=2):
    return a ** power * k


defvjp(scaled_power, lambda ans, a, k, power=2: lambda g: g * power * a ** (power - 1) * k,
       None)


def test_static_arguments_keywords_and_a_none_vjp():
    a = numpy.arange(6.0).reshape(2, 3)
    g = jitgrad.grad(lambda a: np.sum(scaled_power(a, 3.0, power=3)))(a)
    numpy.testing.assert_allclose(g, 9 * a ** 2)
    assert jitgrad.grad(lambda k: np.sum(scaled_power(a, k)))(2.0) == 0.0  # None: no gradient


def test_missing_vjp_is_a_clear_error():
    @primitive
    def twice(x):
        return 2 * x

    with pytest.raises(TracingError, match="twice has no VJP for argument 0"):
        jitgrad.grad(lambda x: np.sum(twice(x)))(Y)


def test_defvjp_argnum():
    @primitive
    def mul(x, y):
        return x * y

    defvjp_argnum(mul, lambda argnum, ans, args, kwargs: lambda g: g * args[1 - argnum])
    gx, gy = jitgrad.grad(lambda x, y: np.sum(mul(x, y)), (0, 1))(Y, 2 * Y)
    numpy.testing.assert_allclose(gx, 2 * Y)
    numpy.testing.assert_allclose(gy, Y)


def test_two_primitives_of_one_name_are_never_confused():
    def make(scale):
        @primitive
        def f(x):
            return x * scale

        defvjp(f, lambda ans, x: lambda g: g * scale)
        return f

    f2, f3 = make(2.0), make(3.0)
    assert jitgrad.grad(lambda x: np.sum(f2(x)))(Y).tolist() == [2.0] * 3
    assert jitgrad.grad(lambda x: np.sum(f3(x)))(Y).tolist() == [3.0] * 3


def test_a_cached_kernel_calls_back_the_right_function_in_a_new_process(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy, jitgrad, jitgrad.numpy as np
        from jitgrad.extend import primitive, defvjp
        scale = float(sys.argv[1])
        @primitive
        def f(x):
            return x * scale
        defvjp(f, lambda ans, x: lambda g: g * scale)
        print(jitgrad.value_and_grad(lambda x: np.sum(f(x)))(numpy.ones(3))[1].tolist())
    """)
    path = tmp_path / "prim.py"
    path.write_text(script)
    env = dict(os.environ, JITGRAD_CACHE_DIR=str(tmp_path / "cache"))
    outs = [subprocess.run([sys.executable, str(path), s], capture_output=True, text=True,
                           env=env, check=True).stdout.strip() for s in ("2", "5", "2")]
    # (the third loads the first one's kernel, with the native body linked in, from the disk)
    assert outs == ["[2.0, 2.0, 2.0]", "[5.0, 5.0, 5.0]", "[2.0, 2.0, 2.0]"]


# --- forward mode: defjvp, or the VJP transposed ------------------------------------------------

def _softplus(x):
    return numpy.log1p(numpy.exp(x))


def test_defjvp_gives_forward_mode_its_rule_and_the_vjp_is_transposed_without_one():
    from jitgrad.extend import defjvp

    calls = []
    with_jvp = primitive(_softplus)
    defvjp(with_jvp, lambda ans, x: lambda g: g / (1.0 + np.exp(-x)))
    defjvp(with_jvp, lambda t, ans, x: calls.append(1) or t / (1.0 + np.exp(-x)))
    without = primitive(_softplus)
    defvjp(without, lambda ans, x: lambda g: g / (1.0 + np.exp(-x)))
    v = numpy.array([1.0, -2.0, 0.5])
    expected = v / (1.0 + numpy.exp(-Y))
    for prim in (with_jvp, without):
        for execution in ("interpret", "compile"):
            with jitgrad.execution(execution):
                value, t = jitgrad.make_jvp(lambda x: prim(x) * 2.0)(Y)(v)
            numpy.testing.assert_allclose(value, 2 * _softplus(Y), rtol=1e-14)
            numpy.testing.assert_allclose(t, 2 * expected, rtol=1e-14)
    assert calls  # the rule given by defjvp was used


def test_a_rule_of_the_wrong_shape_is_named():
    from jitgrad.extend import defjvp

    bad = primitive(_softplus)
    defvjp(bad, lambda ans, x: lambda g: np.sum(g))
    with pytest.raises(TracingError, match=r"the VJP of primitive _softplus for argument 0 "
                                           r"returned a value of shape \(\); it must have the "
                                           r"shape of that argument, \(3,\)"):
        jitgrad.grad(lambda x: np.sum(bad(x)))(Y)
    defjvp(bad, lambda t, ans, x: t[:2])
    with pytest.raises(TracingError, match=r"the JVP of primitive _softplus .* shape \(2,\)"):
        jitgrad.make_jvp(bad)(Y)(Y)


def test_checkpoint_recomputes_instead_of_storing():
    from autograd.differential_operators import checkpoint as a_checkpoint

    import autograd.numpy as anp

    w = numpy.random.default_rng(0).standard_normal((3, 3)) / 2

    def net(np, checkpoint):
        layer = checkpoint(lambda x, w: np.tanh(np.dot(w, x)) + np.sin(x))

        def f(x, w):
            for _ in range(3):
                x = layer(x, w)
            return np.sum(x ** 2)
        return f

    ours = jitgrad.checkpoint
    for execution in ("interpret", "compile"):
        with jitgrad.execution(execution):
            g = jitgrad.grad(net(np, ours), (0, 1))(Y, w)
        e = autograd.grad(net(anp, a_checkpoint), (0, 1))(Y, w)
        numpy.testing.assert_allclose(g[0], e[0], rtol=1e-13)
        numpy.testing.assert_allclose(g[1], e[1], rtol=1e-13)
    h = jitgrad.hessian(lambda x: net(np, ours)(x, w))(Y)
    numpy.testing.assert_allclose(h, autograd.hessian(lambda x: net(anp, a_checkpoint)(x, w))(Y),
                                  rtol=1e-12)
    # the layer is a loop step of its own: its intermediates live inside it
    ir = str(jitgrad.explain(net(np, ours), Y, w).grad_ir)
    assert ir.count("scan[") >= 6  # three forward steps, three recomputing adjoint steps
    assert ours(lambda x: x * 2.0)(Y) is not None  # outside a trace: the function itself


# --- native or callback ---------------------------------------------------------------------------

def _kernels_of(prim) -> set:
    """How the compiled kernels made so far call `prim`: "native", "callback", or both."""
    import jitgrad.extend as ext

    made = vars(ext)
    return {"callback" if made[name] in (ext._real_kernel, ext._complex_kernel) else "native"
            for name, spec in ext._NATIVE.items() if spec[0] is prim and name in made}


def _lse_jitgrad_numpy(x):  # as autograd users write it: np is jitgrad.numpy here
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def test_a_body_numba_compiles_runs_natively_inside_the_kernel():
    native = primitive(_lse_jitgrad_numpy)
    defvjp(native, lambda ans, x: lambda g: g * np.exp(x - ans))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jitgrad.JitgradWarning)
        with jitgrad.execution("compile"):
            value, g = jitgrad.value_and_grad(lambda y: native(y ** 2) * 3.0)(Y)
    z = Y ** 2
    numpy.testing.assert_allclose(value, 3 * _lse(z), rtol=1e-14)
    numpy.testing.assert_allclose(g, 6 * Y * numpy.exp(z - _lse(z)), rtol=1e-13)
    assert _kernels_of(native) == {"native"}


def test_a_body_numba_cannot_compile_calls_back_with_one_warning():
    import scipy.special

    @primitive
    def erf(x):
        return scipy.special.erf(x)

    defvjp(erf, lambda ans, x: lambda g: g * 2.0 / numpy.sqrt(numpy.pi) * np.exp(-x ** 2))
    with jitgrad.execution("compile"):
        with pytest.warns(jitgrad.JitgradWarning, match="primitive erf runs in compiled kernels "
                                                         "as a call back into Python, because "
                                                         "Numba cannot compile it"):
            g = jitgrad.grad(lambda x: np.sum(erf(x)))(Y)
        with warnings.catch_warnings():
            warnings.simplefilter("error", jitgrad.JitgradWarning)  # once is enough
            g2 = jitgrad.grad(lambda x: np.sum(erf(x) * x))(Y)
    numpy.testing.assert_allclose(g, 2 / numpy.sqrt(numpy.pi) * numpy.exp(-Y ** 2), rtol=1e-14)
    numpy.testing.assert_allclose(g2, scipy.special.erf(Y) + Y * g, rtol=1e-14)
    assert _kernels_of(erf) == {"callback"}

    quiet = primitive(native=False)(_softplus)
    defvjp(quiet, lambda ans, x: lambda g: g / (1.0 + np.exp(-x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jitgrad.JitgradWarning)
        with jitgrad.execution("compile"):
            g = jitgrad.grad(lambda x: np.sum(quiet(x)))(Y)
    numpy.testing.assert_allclose(g, 1 / (1 + numpy.exp(-Y)), rtol=1e-14)
    assert _kernels_of(quiet) == {"callback"}


SCALE = 2.0
WEIGHTS = numpy.ones(3)


@primitive
def _weighted(x):
    return x * SCALE * WEIGHTS


defvjp(_weighted, lambda ans, x: lambda g: g * SCALE * WEIGHTS)


def test_a_native_body_never_runs_with_stale_globals():
    # Numba freezes the globals a compiled body reads: a rebound or changed one must compile
    # again, never reuse the kernel made with the old value.
    global SCALE
    vg = jitgrad.value_and_grad(lambda x: np.sum(_weighted(x) * x))
    try:
        with jitgrad.execution("compile"):
            for scale, weight in [(2.0, 1.0), (5.0, 1.0), (5.0, 3.0)]:
                SCALE = scale
                WEIGHTS[:] = weight  # in place
                value, g = vg(Y)
                numpy.testing.assert_allclose(value, scale * weight * numpy.sum(Y ** 2),
                                              rtol=1e-14)
                numpy.testing.assert_allclose(g, 2 * scale * weight * Y, rtol=1e-14)
    finally:
        SCALE, WEIGHTS[:] = 2.0, 1.0
    assert _kernels_of(_weighted) == {"native"}


@primitive
def _pick(x, mode, k=1):
    if mode == "double":
        return 2.0 * x * k
    return 3.0 * x * k


defvjp(_pick, lambda ans, x, mode, k=1: lambda g: g * (2.0 if mode == "double" else 3.0) * k)


def test_frozen_arguments_of_a_native_primitive_are_told_apart():
    def f(x):
        return np.sum(_pick(x, "double") + _pick(x, "triple", k=2) + _pick(x, "triple"))

    for execution in ("interpret", "compile"):
        with jitgrad.execution(execution):
            value, g = jitgrad.value_and_grad(f)(Y)
        numpy.testing.assert_allclose(value, 11 * numpy.sum(Y), rtol=1e-14)
        numpy.testing.assert_allclose(g, numpy.full(3, 11.0))
    assert _kernels_of(_pick) == {"native"}


def test_a_native_primitive_never_hands_out_its_operands_memory():
    @primitive
    def same(x):
        return x  # the operand itself: the kernel gets a copy

    defvjp(same, lambda ans, x: lambda g: g)
    x = Y.copy()
    with jitgrad.execution("compile"):
        value, g = jitgrad.value_and_grad(lambda x: np.sum(same(x) * x))(x)
    numpy.testing.assert_allclose(g, 2 * Y)
    numpy.testing.assert_array_equal(x, Y)
    assert _kernels_of(same) == {"native"}
