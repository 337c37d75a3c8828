"""jitgrad.extend: primitives with user-defined VJPs (autograd.extend's API), compiled as
callbacks, differentiated to second order, never confused with one another."""

import os
import subprocess
import sys
import textwrap

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


def test_second_order_through_the_users_vjp():
    with jitgrad.execution("interpret"):
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
                           env=env, check=True).stdout.strip() for s in ("2", "5")]
    assert outs == ["[2.0, 2.0, 2.0]", "[5.0, 5.0, 5.0]"]
