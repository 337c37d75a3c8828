"""Python control flow wherever users write it (issue 12): `break`, `continue` and `return` in
loops, `and`/`or`/`not`, conditional expressions, and every kind of callable, each against
autograd's gradient on both sides of every condition."""

import functools
import math

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import grad, value_and_grad

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402


def same_as_autograd(make, *points, argnum=0):
    """`make(numpy_module)` is the function; its jitgrad and autograd value and gradient agree
    at every point."""
    ours, theirs = value_and_grad(make(np), argnum), autograd.value_and_grad(make(anp), argnum)
    for args in points:
        args = args if isinstance(args, tuple) else (args,)
        (v, g), (rv, rg) = ours(*args), theirs(*args)
        numpy.testing.assert_allclose(v, rv, rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-12)


# --- break ----------------------------------------------------------------------------------------


def sinusoid(npm):  # autograd's examples/sinusoid.py, its Taylor series
    def fun(x):
        currterm = x
        ans = currterm
        for i in range(1000):
            print(i, end=" ")
            currterm = -currterm * x**2 / ((2 * i + 3) * (2 * i + 2))
            ans = ans + currterm
            if npm.abs(currterm) < 0.2:
                break  # (Very generous tolerance!)
        return ans
    return fun


def test_sinusoid_first_derivative_through_the_break_loop(builds, capsys):
    xs = numpy.linspace(-10, 10, 25)
    same_as_autograd(sinusoid, *xs)
    assert builds["fun"] == 1  # one kernel for every x, whatever the trip count
    assert "0" in capsys.readouterr().out  # print runs when the function is traced


def test_for_range_1000_with_break_is_one_compiled_loop(builds):
    def f(x):
        s = x
        for i in range(1000):
            s = s * 1.01 + 0.1
            if s > 50.0:
                break
        return s

    ours = grad(f)
    for x in (0.5, 10.0, 49.0, 60.0):
        expected = autograd.grad(f)(x)
        assert math.isclose(ours(x), expected, rel_tol=1e-12)
    assert builds["f"] == 1
    source = jitgrad.explain(f, 0.5).source
    assert source.count("while ") >= 1 and len(source) < 20_000  # a loop, not 1000 copies


def test_break_in_while_with_else():
    def make(npm):
        def f(x):
            s = x
            while npm.sum(s) < 100.0:
                s = s * 2.0
                if npm.max(s) > 50.0:
                    break
            else:
                s = s + 1.0
            return npm.sum(s ** 2)
        return f

    same_as_autograd(make, numpy.array([1.0, 2.0]), numpy.array([30.0, 0.1]),
                     numpy.array([200.0, 1.0]))


def test_nested_loops_break_the_inner_one_only():
    def make(npm):
        def f(x):
            total = 0.0 * x
            for i in range(3):
                y = x
                while True:
                    y = y * 1.5
                    if y > 4.0 + i:
                        break
                total = total + y
            return total
        return f

    same_as_autograd(make, 0.5, 1.0, 3.0)


# --- continue -------------------------------------------------------------------------------------


def test_continue_in_while_and_for():
    def make(npm):
        def f(x):
            total = 0.0
            i = 0
            while i < 8:
                i += 1
                if x * i > 3.0:
                    continue
                total = total + npm.sin(x * i)
            for j in range(5):
                if j % 2 == 0:
                    continue
                total = total + x ** j
            return total
        return f

    same_as_autograd(make, 0.2, 0.5, 2.0)


# --- return inside loops ------------------------------------------------------------------------


def test_return_from_inside_a_loop():
    def make(npm):
        def f(x):
            for i in range(100):
                x = x * 1.5
                if x > 10.0:
                    return x * 2.0
            return -x
        return f

    same_as_autograd(make, 1.0, 3.0, 1e-40)


def test_return_from_a_while_inside_a_for():
    def make(npm):
        def f(x):
            for i in range(4):
                y = x
                while y < 100.0:
                    y = y * 3.0
                    if y > 20.0 * (i + 1):
                        return y + i
            return x
        return f

    same_as_autograd(make, 0.5, 5.0, 200.0)


def test_newton_iteration_with_early_exit():
    def make(npm):
        def newton_sqrt(a):
            x = a
            for _ in range(50):
                x_new = 0.5 * (x + a / x)
                if npm.abs(x_new - x) < 1e-12:
                    return x_new
                x = x_new
            return x
        return newton_sqrt

    same_as_autograd(make, 2.0, 10.0, 0.3)


# --- and / or / not / conditional expressions ---------------------------------------------------


def test_and_or_not_on_traced_conditions():
    def make(npm):
        def f(x):
            if x > 0.0 and x < 1.0:
                y = x ** 2
            elif x < -1.0 or x > 5.0:
                y = npm.sin(x)
            else:
                y = -x
            if not x > 2.0:
                y = y * 3.0
            return y
        return f

    same_as_autograd(make, 0.5, -2.0, 6.0, 3.0, -0.5)


def test_while_with_and_in_its_condition():
    def make(npm):
        def f(x):
            err, it = 1.0 + 0.0 * x, 0
            y = x
            while err > 1e-6 and it < 200:
                y_new = npm.cos(y) * 0.5 + x * 0.1
                err = npm.abs(y_new - y)
                y = y_new
                it += 1
            return y
        return f

    same_as_autograd(make, 0.3, 2.0)


def test_short_circuit_keeps_guards_safe_for_concrete_values():
    def f(x, items):
        n = len(items)
        if n > 0 and items[0] > 0:  # items[0] only evaluated when n > 0
            return x * items[0]
        return x

    assert grad(f)(2.0, []) == 1.0
    assert grad(f)(2.0, [3.0]) == 3.0


def test_conditional_expressions():
    def make(npm):
        def f(x):
            y = x ** 2 if x > 0 else -x ** 3
            g = lambda t: npm.sqrt(t) if t > 0 else 0.0 * t  # noqa: E731
            return y + g(x)
        return f

    same_as_autograd(make, 2.0, -1.0)


def test_the_untaken_branch_of_a_conditional_expression_leaves_no_nan():
    def f(x):
        return np.sqrt(x) if x > 0 else 0.0 * x

    assert grad(f)(-1.0) == 0.0  # np.where(x > 0, sqrt(x), 0) would give NaN here


def test_conditional_expressions_on_arrays():
    def make(npm):
        def f(x):
            return npm.sum(x ** 2) if npm.sum(x) > 0 else npm.sum(npm.sin(x))
        return f

    same_as_autograd(make, numpy.array([1.0, 2.0]), numpy.array([-1.0, -0.5]))


# --- every kind of callable ---------------------------------------------------------------------


def newton_sqrt(a, npm=np):
    x = a
    for _ in range(30):
        x = 0.5 * (x + a / x)
        if npm.max(npm.abs(x * x - a)) < 1e-12:
            break
    return x


def decorate(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)
    return wrapper


class Loss:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, a):
        return np.sum(newton_sqrt(a)) * self.scale

    def method(self, a):
        return np.sum(newton_sqrt(a)) * self.scale

    @staticmethod
    def static(a):
        return np.sum(newton_sqrt(a))


@decorate
def decorated(a):
    return np.sum(newton_sqrt(a))


def test_every_kind_of_entry_converts_its_callees():
    a = numpy.array([2.0, 3.0])
    expected = 0.5 / numpy.sqrt(a)
    entries = [lambda a: np.sum(newton_sqrt(a)),
               functools.partial(lambda a, k: np.sum(newton_sqrt(a)) * k, k=1.0),
               Loss(1.0), Loss(1.0).method, Loss.static, decorated]
    for entry in entries:
        numpy.testing.assert_allclose(grad(entry)(a), expected, rtol=1e-10)


def test_unconvertible_loops_still_say_why():
    def f(x):
        xs = [x]
        while xs[-1] < 10.0:
            xs[0] = xs[-1] * 2.0  # a subscript assignment in a traced loop
        return xs[0]

    with pytest.raises(jitgrad.TracingError, match="subscript"):
        grad(f)(1.0)


# --- for over other iterables -------------------------------------------------------------------


def test_for_over_arrays_enumerate_and_zip_with_break():
    def make(npm):
        def f(x, y):
            total = 0.0
            for i, (a, b) in enumerate(zip(x, y)):
                total = total + a * b * (i + 1)
                if total > 5.0:
                    break
            for row in npm.reshape(x, (2, 2)):
                total = total + npm.sum(npm.sin(row))
            return total
        return f

    y = numpy.array([1.0, 2.0, 3.0, 4.0])
    same_as_autograd(make, (numpy.array([0.1, 0.2, 0.3, 0.4]), y),
                     (numpy.array([1.0, 2.0, 0.3, 0.4]), y))
