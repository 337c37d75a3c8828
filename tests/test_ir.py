"""The IR: golden printouts (a change in tracing or in the adjoint shows as a readable diff),
and the verifier rejecting broken graphs."""

import textwrap

import numpy
import pytest

import jitgrad
import jitgrad.numpy as np
from jitgrad.errors import JitgradInternalError
from jitgrad.ir import Graph, Lit, Stmt, Var, verify
from jitgrad.primitives import FLOAT, Prim


def golden(text):
    return textwrap.dedent(text).strip()


def test_trace_of_rosenbrock():
    def rosen(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    e = jitgrad.explain(rosen, numpy.ones(5))
    assert str(e.ir) == golden("""
        def rosen(x0:f64[5]):
          x1:f64[4] = slice[index=[1:5]] x0
          x2:f64[4] = slice[index=[0:4]] x0
          x3:f64[4] = pow x2 2
          x4:f64[4] = sub x1 x3
          x5:f64[4] = pow x4 2
          x6:f64[4] = mul 100.0 x5
          x7:f64[4] = slice[index=[0:4]] x0
          x8:f64[4] = sub 1.0 x7
          x9:f64[4] = pow x8 2
          x10:f64[4] = add x6 x9
          x11:f64[] = reduce_sum[axes=(0,), keepdims=False] x10
          return x11
    """)


def test_adjoint_of_a_broadcast_product():
    c = numpy.arange(3.0)

    def f(x):
        return np.sum(np.tanh(x[:, None] * c))

    e = jitgrad.explain(f, numpy.ones(2))
    assert str(e.grad_ir) == golden("""
        def f(x0:f64[2]):
          consts x1:f64[3]
          x2:f64[2,1] = reshape[shape=(2, 1)] x0
          x3:f64[2,3] = mul x2 x1
          x4:f64[2,3] = tanh x3
          x5:f64[] = reduce_sum[axes=(0, 1), keepdims=False] x4
          x6:f64[2,3] = broadcast_to[shape=(2, 3)] 1.0
          x7:f64[2,3] = sech2 x3 x4
          x8:f64[2,3] = mul x6 x7
          x9:f64[2,3] = mul x8 x1
          x10:f64[2,1] = reduce_sum[axes=(1,), keepdims=True] x9
          x11:f64[2] = reshape[shape=(2,)] x10
          return x5, x11
    """)


def test_scalar_function_ir():
    e = jitgrad.explain(lambda x, y: x * y + np.sin(x), 1.0, 2.0, argnum=(0, 1))
    assert str(e.ir) == golden("""
        def <lambda>(x0:f64[], x1:f64[]):
          x2:f64[] = mul x0 x1
          x3:f64[] = sin x0
          x4:f64[] = add x2 x3
          return x4
    """)


def _graph(stmts, inputs, outputs):
    return Graph(tuple(inputs), (), tuple(stmts), tuple(outputs))


def test_verifier_rejects_use_before_definition():
    x, y, z = Var(0, (3,), FLOAT), Var(1, (3,), FLOAT), Var(2, (3,), FLOAT)
    g = _graph([Stmt(Prim.add, (x, y), (z,))], [x], [z])
    with pytest.raises(JitgradInternalError, match="x1 is used before it is defined"):
        verify(g)


def test_verifier_rejects_double_binding():
    x, y = Var(0, (3,), FLOAT), Var(1, (3,), FLOAT)
    g = _graph([Stmt(Prim.exp, (x,), (y,)), Stmt(Prim.sin, (x,), (y,))], [x], [y])
    with pytest.raises(JitgradInternalError, match="bound twice"):
        verify(g)


def test_verifier_rejects_wrong_shape():
    x, y = Var(0, (3,), FLOAT), Var(1, (4,), FLOAT)
    g = _graph([Stmt(Prim.mul, (x, Lit(2.0, FLOAT)), (y,))], [x], [y])
    with pytest.raises(JitgradInternalError, match="shape rule"):
        verify(g)


def test_the_interpreter_drops_values_after_their_last_use():
    """A long chain interpreted holds a few of its arrays, not all of them (fluidsim's gradient
    held 6 GB without this), and computes the same outputs."""
    import tracemalloc

    from jitgrad.interpret import evaluate, last_uses
    from jitgrad.trace import Trace

    x0 = numpy.linspace(0.0, 1.0, 100_000)  # 0.8 MB
    with Trace() as trace:
        x = trace.new_input(x0.shape, x0.dtype)
        y = x
        for _ in range(60):
            y = y * 1.0001 + 1.0
        graph = trace.finish([np.sum(y), y * 2.0])
    frees = last_uses(graph)
    assert sum(map(len, frees)) == len(graph.stmts) - 2  # every value but the two outputs

    def peak(frees):
        tracemalloc.start()
        try:
            out = evaluate(graph, [x0], [], frees)
            return tracemalloc.get_traced_memory()[1], out
        finally:
            tracemalloc.stop()

    kept, expected = peak(None)
    dropped, out = peak(frees)
    assert kept > 100 * x0.nbytes and dropped < 6 * x0.nbytes
    assert out[0] == expected[0]
    numpy.testing.assert_array_equal(out[1], expected[1])
