"""Forward mode (jitgrad/forward.py): make_jvp, deriv and the Jacobian by columns, against autograd
and against reverse mode (every check_grads call in the suite also compares make_jvp's tangent
with the gradient, interpreted; see tests/gradcheck.py).  Here: loops, branches, call ops,
complex numbers, forward over reverse, the compiled kernel, and bad tangents."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad import ArgumentError

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

rng = numpy.random.default_rng(7)
X = rng.standard_normal(4)
V = rng.standard_normal(4)
W = rng.standard_normal((3, 4))


def close(a, b, rtol=1e-12):
    numpy.testing.assert_allclose(a, b, rtol=rtol, atol=1e-13)


def _while(np):
    def f(x):
        y = x
        while np.sum(y ** 2) < 50.0:
            y = y * 1.3 + np.sin(y)
        return y
    return f


def _branches(np):
    def f(x):
        if np.sum(x) > 0:
            return np.exp(x) * x[0]
        return np.cos(x) * 2.0
    return f


def _fori(x):
    return jitgrad.fori_loop(0, 5, lambda i, v: v * np.cos(v) + i, x)


def _fori_reference(x):
    v = x
    for i in range(5):
        v = v * anp.cos(v) + i
    return v


def _calls(np):
    return lambda x: (np.linalg.solve(np.outer(x, x) + 4 * np.eye(4), np.sort(x) ** 2)
                      + np.cumsum(x[::-1]) * np.real(np.fft.fft(x)))


CASES = [
    ("elementwise-matmul", lambda np: (lambda x: np.tanh(np.dot(W, x)) * np.max(x ** 2)),
     None),
    ("while", _while, None),
    ("branches", _branches, None),
    ("fori_loop", lambda np: _fori if np is jitgrad.numpy else _fori_reference, None),
    ("call-ops", _calls, "reversemode"),  # autograd has no JVP for solve, sort and fft
]


@pytest.mark.parametrize("execution", ["interpret", "compile"])
@pytest.mark.parametrize("name,make,reference", CASES, ids=[c[0] for c in CASES])
def test_make_jvp_against_autograd(name, make, reference, execution):
    from autograd.differential_operators import make_jvp_reversemode

    with jitgrad.execution(execution):
        value, tangent = jitgrad.make_jvp(make(np))(X)(V)
    theirs = make_jvp_reversemode if reference else autograd.make_jvp
    expected = theirs(make(anp))(X)(V)
    expected = expected[1] if isinstance(expected, tuple) else expected
    close(value, make(anp)(X))
    close(tangent, expected, rtol=1e-10)


def test_forward_over_reverse_is_the_hessian_vector_product():
    def f(x):
        return np.sum(np.sin(x) * np.cumsum(x) ** 2) + np.max(x[:2] * x[1:3])

    _, hv = jitgrad.make_jvp(jitgrad.grad(f))(X)(V)
    close(hv, jitgrad.hessian_vector_product(f)(X, V), rtol=1e-10)


def test_complex_tangents_follow_autograd():
    z = X + 1j * V

    def f(np):
        return lambda z: np.exp(z) * np.conj(z) + np.abs(z)

    _, t = jitgrad.make_jvp(f(np))(z)(V - 2j * X)
    close(t, autograd.make_jvp(f(anp))(z)(V - 2j * X)[1])


def test_deriv_and_tree_tangents():
    assert jitgrad.deriv(lambda t: np.sin(t) * t ** 2)(0.7) == pytest.approx(
        numpy.cos(0.7) * 0.49 + 2 * 0.7 * numpy.sin(0.7), rel=1e-14)
    params = {"w": X, "b": 0.5}
    _, t = jitgrad.make_jvp(lambda p: np.sum(p["w"] ** 2) * p["b"])(params)(
        {"w": V, "b": 2.0})
    assert t == pytest.approx(numpy.sum(2 * X * V) * 0.5 + numpy.sum(X ** 2) * 2.0, rel=1e-13)


def test_jacobian_by_columns_is_one_kernel_and_matches_rows():
    f = lambda x: np.outer(np.tanh(x), numpy.arange(5.0)) * np.sum(x)  # noqa: E731
    x = X[:2]  # 2 inputs, 10 outputs: by columns
    by_columns = jitgrad.jacobian(f)(x)
    with jitgrad.execution("interpret"):
        interpreted = jitgrad.jacobian(f)(x)
    rows = numpy.array([jitgrad.make_vjp(f)(x)[0](e.reshape(2, 5)) for e in numpy.eye(10)])
    close(by_columns, rows.reshape(2, 5, 2))
    close(interpreted, by_columns)


def test_forward_mode_through_a_loop_stores_nothing_per_iteration():
    from jitgrad.api import _GradFunction

    impl = _GradFunction(_while(np), 0, with_value=True, kind="jvp")
    build = impl._build((X,), {}, None, generate=False)
    loops = [s for s in build.grad_graph.stmts if s.prim.name == "while_loop"]
    assert loops and not any(s.params.get("save") for s in loops)


def test_bad_tangents_are_named():
    jvp = jitgrad.make_jvp(lambda x: np.sin(x))(X)
    with pytest.raises(ArgumentError, match=r"a tangent of shape \(3,\) for an argument of "
                                            r"shape \(4,\)"):
        jvp(V[:3])
    with pytest.raises(ArgumentError, match="structure"):
        jitgrad.make_jvp(lambda p: np.sum(p[0] * p[1]))((X, X))(V)


def test_jvp_with_respect_to_every_argument_is_one_kernel_kept_with_the_function(monkeypatch):
    from jitgrad import compile as jg_compile

    def f(x, w):
        return np.tanh(x * w) + np.sum(w) * x

    primals, tangents = (X, 2.0 * X), (V, -V)
    value, t = jitgrad.jvp(f, primals, tangents)
    close(value, f(*primals))
    tx = jitgrad.make_jvp(f, 0)(*primals)(V)[1]
    tw = jitgrad.make_jvp(f, 1)(*primals)(-V)[1]
    close(t, tx + tw)
    loads = []
    real_load = jg_compile.load
    monkeypatch.setattr(jg_compile, "load", lambda source: loads.append(1) or real_load(source))
    for _ in range(3):
        close(jitgrad.jvp(f, list(primals), list(tangents))[1], t)
    assert not loads  # no compile again: the kernel lives with f
    with pytest.raises(ArgumentError, match="2 primals but 1 tangents"):
        jitgrad.jvp(f, primals, (V,))
    with pytest.raises(ArgumentError, match="must be tuples"):
        jitgrad.jvp(f, X, V)


def test_forward_mode_names_a_primitive_whose_vjp_it_cannot_transpose():
    from jitgrad import TracingError
    from jitgrad.extend import defvjp, primitive

    opaque = primitive(lambda g: g * 1.0)  # no VJP of its own

    @primitive
    def wave(x):
        return numpy.sin(x)

    defvjp(wave, lambda ans, x: lambda g: opaque(g) * np.cos(x))
    close(jitgrad.grad(lambda x: np.sum(wave(x)))(X), numpy.cos(X))  # reverse mode is fine
    with pytest.raises(TracingError, match=r"forward mode through wave: it has no forward rule "
                                           r"for operand 0 .*defjvp.* primitive <lambda> has no "
                                           r"VJP for argument 0"):
        jitgrad.make_jvp(lambda x: np.sum(wave(x)))(X)(V)


def test_checkpoint_of_something_not_callable_is_named():
    with pytest.raises(ArgumentError, match="checkpoint takes the function to recompute, not a "
                                            "float"):
        jitgrad.checkpoint(3.0)
