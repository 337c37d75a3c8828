"""The compiled backend against its oracles: the NumPy reference interpreter of the same IR,
and autograd on the same function.  Also: every primitive is in every table."""

import numpy
import pytest

import jitgrad
import jitgrad.numpy as jnp
from jitgrad import ad, codegen, primitives
from jitgrad.api import _GradFunction
from jitgrad.interpret import evaluate
from jitgrad.ir import verify
from jitgrad.primitives import ELEMENTWISE, VIEW, Prim

from functions import CORPUS

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402


def build(f, args, argnum=0):
    gf = _GradFunction(f, argnum, with_value=True)
    key, dynamic, _ = gf._signature(args, {})
    return gf._build(args, {}, key), dynamic


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_compiled_matches_interpreter_and_autograd(name):
    make, make_args = CORPUS[name]
    args = make_args()
    argnum = tuple(range(len(args))) if len(args) > 1 else 0
    b, dynamic = build(make(jnp), args, argnum)
    verify(b.graph)
    verify(b.grad_graph)
    interpreted = evaluate(b.grad_graph, dynamic, b.consts)
    value, grads = jitgrad.value_and_grad(make(jnp), argnum)(*args)
    compiled = [value] + list(_leaves(grads))
    assert len(compiled) == len(interpreted)
    for c, i in zip(compiled, interpreted):
        numpy.testing.assert_allclose(c, i, rtol=1e-10, atol=1e-12)
    ref_value, ref_grads = autograd.value_and_grad(make(anp), argnum)(*args)
    numpy.testing.assert_allclose(value, ref_value, rtol=1e-10)
    for c, r in zip(_leaves(grads), _leaves(ref_grads)):
        numpy.testing.assert_allclose(c, r, rtol=1e-8, atol=1e-10)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        for t in tree:
            yield from _leaves(t)
    else:
        yield tree


def test_every_primitive_has_every_rule():
    primitives.check_tables()
    for prim in Prim:
        assert prim in ad.VJPS or prim in ad.JOINT or prim in ad.OPS, f"{prim.name}: no VJP rule"
        if prim in ELEMENTWISE and prim not in (Prim.pow, Prim.convert, Prim.elementwise):
            assert prim in codegen.CODE, f"{prim.name} has no codegen entry"
    # Views, reductions and the rest are written by the loop writer and KernelWriter.call.
    assert VIEW <= {Prim.broadcast_to, Prim.slice, Prim.transpose, Prim.reshape}


def test_every_op_has_its_facts():
    import jitgrad.numpy  # noqa: F401  (imports every family)
    from jitgrad.ops import ALL_OPS, CallOp, ElementwiseOp

    for op in ALL_OPS:
        assert callable(op.numpy), op.name
        assert op.vjp is None or all(r is None or callable(r) for r in op.vjp), op.name
        if isinstance(op, ElementwiseOp):
            assert (op.code is None) != (op.scalar is None), op.name
            assert op.scalar is None or hasattr(op.scalar, "py_func"), op.name
        else:
            assert isinstance(op, CallOp) and hasattr(op.kernel, "py_func"), op.name
            assert callable(op.shape), op.name
        assert op.fingerprint(), op.name


def test_rosenbrock_is_one_fused_loop_written_as_a_gather():
    make, make_args = CORPUS["rosenbrock"]
    b, _ = build(make(jnp), make_args())
    nests = [line for line in b.source.splitlines() if line.strip().startswith("# loop over")]
    assert len(nests) == 1, b.source
    # Both slice adjoints gather into g[j] (no g[j + 1] += ...): three segments, no zero fill.
    n = {value: name for name, value in b.lifted.items()}  # sizes are the kernel's arguments
    assert f"as a gather over ({n[12]},)" in nests[0]
    assert f"for i0 in range(1, {n[11]}):" in b.source and "np.zeros" not in b.source
    assert "+ 1] +=" not in b.source


def test_elementwise_chain_is_one_fused_loop():
    make, make_args = CORPUS["chain"]
    b, _ = build(make(jnp), make_args())
    loops = [line for line in b.source.splitlines() if line.strip().startswith("for ")]
    assert len(loops) == 1, b.source
    # exp(-x*x) is shared by the value and the gradient: computed once per element.
    assert b.source.count("vecmath.exp(") == 1, b.source


def test_a_costly_value_broadcast_over_a_larger_space_is_computed_once_per_element():
    """exp(q) of a (5, 10) parameter against (200, 5, 10) data (ADBench's GMM) is stored once,
    in a nest of its own, not recomputed 200 times in the big nest; a cheap one stays fused."""
    xc = numpy.random.RandomState(0).standard_normal((200, 5, 10))
    q = numpy.random.RandomState(1).standard_normal((5, 10)) * 0.1

    def f(q):
        return jnp.sum((jnp.exp(q) * xc) ** 2) + jnp.sum((q * 2.0 + xc) ** 2)

    source = jitgrad.explain(f, q).source
    nests = source.split("# loop over ")[1:]  # each starts with its space, "(N2, N0, N1)"
    big = [n for n in nests if n[:n.index(")")].count(",") == 2]
    assert big and all("exp(" not in n for n in big), source
    assert sum("exp(" in n for n in nests) >= 1, source
    g = jitgrad.grad(f)(q)
    expected = 2 * (numpy.exp(q) * xc) * xc * numpy.exp(q)
    expected = expected.sum(axis=0) + (2 * (q * 2.0 + xc) * 2.0).sum(axis=0)
    numpy.testing.assert_allclose(g, expected, rtol=1e-12)


def test_a_value_with_a_costly_tree_broadcast_over_a_larger_space_is_stored_once():
    """A log-sum-exp's weight, exp(a - m) / s (a product over the costly statements, made a
    column by a reshape), broadcast over the d coordinates of each point in the gradient (the
    GMM's): computed once per (point, component), not once per coordinate."""
    x = numpy.random.RandomState(0).standard_normal((300, 4, 10))

    def f(w):
        a = jnp.sum((x - w) ** 2, axis=2)  # (300, 4)
        m = jnp.max(a, axis=1, keepdims=True)
        return jnp.sum(jnp.log(jnp.sum(jnp.exp(a - m), axis=1)) + m[:, 0])

    w = numpy.random.RandomState(1).standard_normal((4, 10)) * 0.1
    source = jitgrad.explain(f, w).source
    nests = source.split("# loop over ")[1:]
    big = [n for n in nests if n[:n.index(")")].count(",") == 2]
    assert len(big) >= 2 and all("exp(" not in n and " / " not in n for n in big), source
    a = ((x - w) ** 2).sum(axis=2)
    p = numpy.exp(a - a.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = (-2 * (x - w) * p[:, :, None]).sum(axis=0)
    numpy.testing.assert_allclose(jitgrad.grad(f)(w), expected, rtol=1e-12)
