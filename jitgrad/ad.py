"""Reverse mode as an IR-to-IR transform.

`value_and_grad_graph` replays a traced graph inside a new trace and then walks its statements
backwards, calling each primitive's VJP rule.  The rules are written with `jitgrad.numpy`, so
they emit IR: the backward pass is ordinary IR that fuses, prints and compiles like the forward
pass, and can itself be differentiated.
"""

from __future__ import annotations

import numpy as onp

from . import numpy as np
from .errors import JitgradInternalError
from .ir import Graph, Lit, Var
from .ops import apply
from .primitives import COMPARE, MULTI, Prim
from .trace import Trace, Tracer, bind, bind_multi, full, innermost_trace

VJPS: dict = {}
# Piecewise constant or boolean-valued: no gradient flows through them.
NONDIFFERENTIABLE = COMPARE | {Prim.sign, Prim.full}


class Scatter:
    """A cotangent that is zero except for `g` at `index`: what the adjoint of a slice gives.
    The driver adds it into the accumulated cotangent in place of materialising the zeros."""

    __slots__ = ("g", "index")

    def __init__(self, g, index):
        self.g, self.index = g, index


def defvjp(prim: Prim, *rules) -> None:
    """Register one rule per operand: `rule(g, ans, *operands, **params)` -> cotangent."""
    VJPS[prim] = rules


def unbroadcast(g, shape):
    """Fit cotangent `g` to an operand of `shape`: sum over the axes broadcasting added or
    stretched, or broadcast a smaller `g` up."""
    gshape = onp.shape(g) if not isinstance(g, Tracer) else g.shape
    if tuple(gshape) == tuple(shape):
        return g
    lead = len(gshape) - len(shape)
    if lead > 0:
        g = np.sum(g, axis=tuple(range(lead)))
        gshape = gshape[lead:]
    stretched = tuple(d for d, n in enumerate(shape)
                      if n == 1 and len(gshape) == len(shape) and gshape[d] != 1)
    if stretched:
        g = np.sum(g, axis=stretched, keepdims=True)
    return np.broadcast_to(g, shape)


for _prim in NONDIFFERENTIABLE:
    defvjp(_prim)

# ------------------------------------------------------------------------------------------------
# Elementwise
# ------------------------------------------------------------------------------------------------

defvjp(Prim.neg, lambda g, ans, x: -g)
defvjp(Prim.exp, lambda g, ans, x: g * ans)
defvjp(Prim.log, lambda g, ans, x: g / x)
defvjp(Prim.log1p, lambda g, ans, x: g / (x + 1.0))
defvjp(Prim.expm1, lambda g, ans, x: g * (ans + 1.0))
defvjp(Prim.sqrt, lambda g, ans, x: g * 0.5 / ans)
defvjp(Prim.sin, lambda g, ans, x: g * np.cos(x))
defvjp(Prim.cos, lambda g, ans, x: -g * np.sin(x))
defvjp(Prim.tan, lambda g, ans, x: g / np.cos(x) ** 2)
def _tanh_vjp(g, ans, x):
    if x.dtype.kind == "c":
        return g / np.cosh(x) ** 2  # autograd's rule
    return g * apply(np._ufuncs.sech2, x, ans)  # 1 - ans**2 would cancel where tanh saturates


defvjp(Prim.tanh, _tanh_vjp)
defvjp(Prim.sinh, lambda g, ans, x: g * np.cosh(x))
defvjp(Prim.cosh, lambda g, ans, x: g * np.sinh(x))
defvjp(Prim.arcsin, lambda g, ans, x: g / np.sqrt(1.0 - x ** 2))
defvjp(Prim.arccos, lambda g, ans, x: -g / np.sqrt(1.0 - x ** 2))
defvjp(Prim.arctan, lambda g, ans, x: g / (1.0 + x ** 2))
def _abs_vjp(g, ans, x):
    if x.dtype.kind != "c":
        return g * np.sign(x)
    # autograd's: g conj(x) / |x|, and 0 at 0.
    return g * np.where(ans == 0.0, 0.0, np.conj(x) / np.where(ans == 0.0, 1.0, ans))


defvjp(Prim.abs, _abs_vjp)
defvjp(Prim.convert, lambda g, ans, x, dtype: g)

defvjp(Prim.add, lambda g, ans, x, y: g, lambda g, ans, x, y: g)
defvjp(Prim.sub, lambda g, ans, x, y: g, lambda g, ans, x, y: -g)
defvjp(Prim.mul, lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x)
defvjp(Prim.div, lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * x / y ** 2)


def _pow_base(g, ans, x, y):
    # As autograd: the exponent y - 1 becomes 1 where y == 0, so d/dx x**0 is 0 at x = 0 too
    # (y * x**(y - 1) would be 0 * inf = nan there).
    if _is_two(y):
        return g * (2.0 * x)
    if isinstance(y, (int, float)):  # a literal exponent: choose in Python, emit no `where`
        return g * y * x ** (y - 1.0 if y != 0 else 1.0)
    return g * y * x ** np.where(y, y - 1.0, 1.0)


def _pow_exponent(g, ans, x, y):
    # log(0) would give 0 * -inf = nan where the true partial is 0 (autograd does the same).
    return g * np.log(np.where(x == 0.0, 1.0, x)) * ans


def _is_two(y) -> bool:
    return isinstance(y, (int, float)) and y == 2


defvjp(Prim.pow, _pow_base, _pow_exponent)


def _balanced_eq(x, z, y):
    # 1 where x is the winner, 1/2 on a tie: a tie's gradient is split evenly, as in autograd.
    return (x == z) / (1.0 + (x == y))


defvjp(Prim.maximum, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
       lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
defvjp(Prim.minimum, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
       lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
defvjp(Prim.where, None,
       lambda g, ans, c, x, y: np.where(c, g, 0.0),
       lambda g, ans, c, x, y: np.where(c, 0.0, g))

# ------------------------------------------------------------------------------------------------
# Reductions
# ------------------------------------------------------------------------------------------------


def _repeat_to_match(g, shape, axes, keepdims, dtype=None):
    if not keepdims and isinstance(g, Tracer):
        g = np.reshape(g, tuple(1 if d in axes else n for d, n in enumerate(shape)))
    if dtype is not None and isinstance(g, float):  # a seed: a literal of the operand's dtype
        trace = innermost_trace()
        return Tracer(trace, trace.emit(Prim.broadcast_to, (Lit(g, dtype),), {"shape": shape}))
    return np.broadcast_to(g, shape)


def _sum_vjp(g, ans, x, axes, keepdims):
    return _repeat_to_match(g, x.shape, axes, keepdims, x.dtype if x.dtype.kind == "f" else None)


def _chooser_vjp(g, ans, x, axes, keepdims):
    # The gradient goes to the elements equal to the extremum, split evenly among ties.
    ans = _repeat_to_match(ans, x.shape, axes, keepdims)
    winners = x == ans
    count = np.sum(winners, axis=axes, keepdims=True)
    return _repeat_to_match(g, x.shape, axes, keepdims) * winners / count


defvjp(Prim.reduce_sum, _sum_vjp)
defvjp(Prim.reduce_max, _chooser_vjp)
defvjp(Prim.reduce_min, _chooser_vjp)

# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------

defvjp(Prim.broadcast_to, lambda g, ans, x, shape: unbroadcast(g, x.shape))
defvjp(Prim.slice, lambda g, ans, x, index: Scatter(g, index))
defvjp(Prim.transpose, lambda g, ans, x, perm: np.transpose(g, tuple(onp.argsort(perm))))
defvjp(Prim.reshape, lambda g, ans, x, shape: np.reshape(g, x.shape))
defvjp(Prim.add_into, lambda g, ans, base, u, index: g,
       lambda g, ans, base, u, index: bind(Prim.slice, g, index=index))

# ------------------------------------------------------------------------------------------------
# Linear algebra
# ------------------------------------------------------------------------------------------------

defvjp(Prim.matmul, lambda g, ans, a, b: np.matmul(g, np.transpose(b)),
       lambda g, ans, a, b: np.matmul(np.transpose(a), g))

# ------------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------------


def value_and_grad_graph(graph: Graph, const_values, wrt: tuple[int, ...]) -> tuple[Graph, list]:
    """A graph returning graph.outputs[0] followed by its gradient with respect to each of
    graph.inputs[i] for i in `wrt`, and the new graph's constant values."""
    return _reverse(graph, const_values, wrt, None)


def value_and_vjp_graph(graph: Graph, const_values, wrt: tuple[int, ...]) -> tuple[Graph, list]:
    """A graph taking graph.inputs and a cotangent of each of graph.outputs, returning those
    outputs followed by the cotangents of graph.inputs[i], i in `wrt`; and its constant values."""
    return _reverse(graph, const_values, wrt, tuple(range(len(graph.outputs))), with_value=True)


def vjp_graph(graph: Graph, wrt: tuple[int, ...], seeded: tuple[int, ...]) -> Graph:
    """The vector-Jacobian product of a region (a graph without constants): its inputs are
    graph.inputs followed by a cotangent for each of graph.outputs[j], j in `seeded`; its outputs
    are the cotangents of graph.inputs[i], i in `wrt`."""
    out, consts = _reverse(graph, [], wrt, seeded)
    if consts:
        raise JitgradInternalError("the adjoint of a region captured constants")
    return out


def vjp_region(graph: Graph, wrt: tuple[int, ...], seeded: tuple[int, ...]):
    """`vjp_graph` for a region whose adjoint may make constants of its own (the index arrays
    of a gather's scatter-add): (graph, constant values), to evaluate together."""
    return _reverse(graph, [], wrt, seeded)


# Rules for statements with regions, registered by control.py.  FORWARD[prim](stmt, args, mask)
# emits the forward statement, keeping what the adjoint needs: (results, residuals).
# JOINT[prim](stmt, residuals, cotangents, args, mask) returns one cotangent (or None) per operand.
FORWARD: dict = {}
JOINT: dict = {}


def value_grad_and_adjoints_graph(graph: Graph, const_values, wrt: tuple[int, ...]):
    """`value_and_grad_graph`, also returning the adjoint of every float variable of `graph`
    that has one: (graph, constant values, those variables, in the order of the extra
    outputs).  For pictures of the computation (jitgrad/graph.py)."""
    record: dict = {}
    out, consts = _reverse(graph, const_values, wrt, None, record=record)
    return out, consts, list(record)


def _reverse(graph: Graph, const_values, wrt, seeded, with_value=False, record=None):
    trace = Trace(graph.name)
    with trace:
        env: dict[Var, object] = {}
        for v in graph.inputs:
            env[v] = trace.new_input(v.shape, v.dtype)
        for v, value in zip(graph.consts, const_values):
            env[v] = Tracer(trace, trace.const(value))

        def read(a):
            return a.value if isinstance(a, Lit) else env[a]

        active = _active_vars(graph, wrt)
        residuals = {}
        for stmt in graph.stmts:
            args = [read(a) for a in stmt.inputs]
            mask = tuple(isinstance(a, Var) and a in active for a in stmt.inputs)
            if stmt.prim in FORWARD and any(mask):
                outs, residuals[stmt] = FORWARD[stmt.prim](stmt, args, mask)
            elif stmt.prim in MULTI:
                outs = bind_multi(stmt.prim, *args, **stmt.params)
            else:
                outs = (bind(stmt.prim, *args, **stmt.params),)
            env.update(zip(stmt.outs, outs))

        cotangents: dict[Var, object] = {}
        if seeded is None:
            y = graph.outputs[0]
            results = [read(y)]
            if isinstance(y, Var) and y in active:
                cotangents[y] = 1.0 if y.shape == () else full(y.shape, 1.0, y.dtype)
        else:
            results = [read(y) for y in graph.outputs] if with_value else []
            for j in seeded:
                y = graph.outputs[j]
                g = trace.new_input(y.shape, y.dtype)
                if isinstance(y, Var) and y in active:
                    _accumulate(cotangents, y, g)

        for stmt in reversed(graph.stmts):
            gs = [cotangents.pop(v, None) for v in stmt.outs]
            if record is not None:  # complete now: every use of these values is behind us
                record.update((v, g) for v, g in zip(stmt.outs, gs) if g is not None)
            if all(g is None for g in gs):
                continue
            args = [read(a) for a in stmt.inputs]
            mask = tuple(isinstance(a, Var) and a in active for a in stmt.inputs)
            if stmt.prim in JOINT:
                contributions = JOINT[stmt.prim](stmt, residuals.get(stmt), gs, args, mask)
            elif stmt.prim in OPS:
                contributions = _op_vjp(stmt, gs, [read(v) for v in stmt.outs], args, mask)
            else:
                rules, ans = VJPS[stmt.prim], read(stmt.out)
                contributions = [rules[i](gs[0], ans, *args, **stmt.params) if m else None
                                 for i, m in enumerate(mask)]
            for a, m, c in zip(stmt.inputs, mask, contributions):
                if m and c is not None:
                    _accumulate(cotangents, a, c)
        for i in wrt:
            v = graph.inputs[i]
            g = cotangents.get(v)
            results.append(full(v.shape, 0.0, v.dtype) if g is None else unbroadcast(g, v.shape))
        if record is not None:
            for v in graph.inputs:
                if v in cotangents:
                    record[v] = unbroadcast(cotangents[v], v.shape)
            for v, g in record.items():
                results.append(g if isinstance(g, Tracer) else full(v.shape, g, v.dtype))
        out = trace.finish(results)
    return out, trace.const_values


OPS = (Prim.elementwise, Prim.call)


def _op_vjp(stmt, gs, outs, args, mask) -> list:
    """The cotangents of an op's operands (ops.py): each operand's rule, given the cotangent and
    the result, or tuples of them (zeros for results nothing reads) when there are several."""
    op = stmt.params["op"]
    params = {k: v for k, v in stmt.params.items() if k != "op"}
    if len(stmt.outs) == 1:
        g, ans = gs[0], outs[0]
    else:
        g = tuple(full(v.shape, 0.0, v.dtype) if c is None and v.dtype.kind in "fc" else c
                  for v, c in zip(stmt.outs, gs))
        ans = tuple(outs)
    return [rule(g, ans, *args, **params) if m and rule is not None else None
            for m, rule in zip(mask, op.rules(len(args)))]


def _accumulate(cotangents: dict, var: Var, contribution) -> None:
    old = cotangents.get(var)
    if any(n < 0 for n in var.shape):  # rows saved by a loop, as many as it ran
        cotangents[var] = contribution if old is None else apply(np._arrays.add_rows, old,
                                                                 contribution)
        return
    if isinstance(contribution, Scatter):
        base = full(var.shape, 0.0, var.dtype) if old is None else old
        cotangents[var] = bind(Prim.add_into, base, contribution.g, index=contribution.index)
        return
    contribution = unbroadcast(contribution, var.shape)
    if var.dtype.kind != "c" and _dtype(contribution).kind == "c":
        contribution = np.real(contribution)  # a real value's cotangent is real (autograd's)
    cotangents[var] = contribution if old is None else old + contribution


def _dtype(value):
    return value.dtype if isinstance(value, Tracer) else onp.result_type(value)


def _active_vars(graph: Graph, wrt) -> set[Var]:
    """Float variables that depend on a differentiated input: the only ones with cotangents."""
    known = {p.name for p in VJPS} | {p.name for p in JOINT} | {p.name for p in OPS}
    missing = {s.prim.name for s in graph.stmts} - known
    if missing:
        raise JitgradInternalError(f"no VJP rule for {sorted(missing)}")
    return dependents(graph, {graph.inputs[i] for i in wrt})


def dependents(graph: Graph, start: set) -> set[Var]:
    """`start` and the float variables of `graph` computed from it.  (Through a loop or a
    branch: every float result of a statement with a dependent operand.)"""
    active = set(start)
    for stmt in graph.stmts:
        if stmt.prim in NONDIFFERENTIABLE or (
                stmt.prim in OPS and not stmt.params["op"].differentiable):
            continue
        if any(isinstance(a, Var) and a in active for a in stmt.inputs):
            active.update(v for v in stmt.outs if v.dtype.kind in "fc")
    return active
