"""Control flow: loops and branches whose conditions depend on traced values, compiled.

Two ways in:
  - explicit structured primitives, `while_loop`, `fori_loop` and `cond` (JAX's signatures);
  - plain Python `if`/`while`/`for`, which `convert/` rewrites into calls of `if_stmt`,
    `while_stmt` and `for_range_stmt` below.  Those run plain Python while the condition is a
    concrete value, and record a structured statement in the IR as soon as it is traced.

A structured statement holds its regions (loop body, condition, branches) as graphs in its params;
they are traced once, on tracers of the loop-carried values, so a loop runs natively for any trip
count: one compile, whatever path the data takes.

Reverse mode (see `_while_vjp`): the forward loop saves its carried values on a tape (one row per
iteration, grown by doubling); the adjoint loop walks the tape backwards applying the body's VJP,
which recomputes the body's intermediate values from the saved carried values.
"""

from __future__ import annotations

import functools
import operator
import os
import random
import sys
import types as pytypes

import numpy as np

from . import ad, watch
from .errors import JitgradInternalError, ShapeError, TracingError
from .fuse import dce
from .interpret import evaluate
from .ir import Graph, Lit, Var
from .primitives import CONTROL_RULES, FLOAT, IMPL, INT, Prim, broadcast_shapes
from .trace import (Trace, Tracer, active_traces, bind, bind_multi, flatten, full,
                    innermost_trace, unflatten, user_frame)

# A Python loop whose condition stays concrete (or a `for` over a Python range) is unrolled at
# trace time up to this many iterations; past it, the rest runs as a compiled loop.
UNROLL_LIMIT = 100

# A compiled loop raises once it has run this many iterations (under `grad` a loop that never ends
# would otherwise grow its tape until memory runs out).  Read when a loop is traced; a loop can
# set its own with `while_loop(..., max_iterations=n)`.
MAX_LOOP_ITERATIONS = int(os.environ.get("JITGRAD_MAX_LOOP_ITERATIONS", "10000000"))


# ------------------------------------------------------------------------------------------------
# Values, types and regions
# ------------------------------------------------------------------------------------------------


def type_of(value):
    """(shape, dtype) of a numeric value, or None for anything else."""
    if isinstance(value, Tracer):
        return value.shape, value.dtype
    if isinstance(value, (bool, np.bool_)):
        return (), np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return (), INT
    if isinstance(value, (float, np.floating)):
        return (), FLOAT
    if isinstance(value, (complex, np.complexfloating)):
        return (), np.dtype(np.complex128)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return value.shape, value.dtype
    return None


def _coerce(value, shape, dtype, what: str):
    """`value` as exactly (shape, dtype), broadcasting and converting as NumPy would."""
    current = type_of(value)
    if current is None:
        raise TracingError(f"{what} holds a {type(value).__name__}; compiled loops and branches "
                           f"carry numbers and arrays only")
    if current[0] != tuple(shape):
        try:
            broadcast_shapes(what, current[0], shape)
        except ShapeError:
            raise ShapeError(f"{what} has shape {current[0]} where shape {tuple(shape)} is "
                             f"needed: its shape must not change inside a loop or differ "
                             f"between branches") from None
        from . import numpy as jnp
        value = jnp.broadcast_to(value, shape)
    if type_of(value)[1] != dtype:
        value = bind(Prim.convert, value, dtype=np.dtype(dtype))
    return value


def _unify(a, b, what: str):
    """The type both of two (shape, dtype) types fit into."""
    try:
        shape = broadcast_shapes(what, a[0], b[0])
    except ShapeError:
        raise ShapeError(f"{what} has shape {a[0]} on one path and {b[0]} on another: its shape "
                         f"must not change inside a loop or differ between branches") from None
    return tuple(shape), np.result_type(a[1], b[1])


def trace_region(fn, in_types, name: str, out_types=None, what=None, branch=False):
    """Trace `fn` on fresh tracers of `in_types`: (graph, constant values, raw outputs).
    With `out_types`, the outputs are coerced to those types first.  A `branch` records the
    operations on the values it captures itself (see Trace.captures); a loop body leaves those
    to the enclosing trace, which computes them once, before the loop."""
    trace = Trace(name)
    trace.captures = branch
    with trace:
        args = [trace.new_input(s, d) for s, d in in_types]
        outs = list(fn(*args))
        if out_types is not None:
            outs = [_coerce(o, s, d, what(j)) for j, (o, (s, d)) in enumerate(zip(outs, out_types))]
        graph = dce(trace.finish(outs)) if out_types is not None else None
    return graph, trace.const_values, outs


def _as_condition(value, where: str):
    if isinstance(value, Tracer):
        if value.size != 1:
            raise TracingError(f"the condition at {where} is an array of shape {value.shape}; "
                               f"a condition must be a single value")
        if value.shape:
            value = bind(Prim.reshape, value, shape=())
        return value if value.dtype.kind == "b" else bind(Prim.ne, value, 0)
    return bool(value)


def _fixed_types(fn, types, name, what):
    """Trace a loop body until the carried types are stable (a Python int that the body turns
    into a float is carried as a float)."""
    for _ in range(4):
        _, _, outs = trace_region(fn, types, name)
        if len(outs) != len(types):
            raise TracingError(f"the body of the loop returned {len(outs)} values for "
                               f"{len(types)} loop variables")
        new = []
        for j, (t, o) in enumerate(zip(types, outs)):
            ot = type_of(o)
            if ot is None:
                raise TracingError(f"{what(j)} holds a {type(o).__name__} after an iteration; "
                                   f"compiled loops carry numbers and arrays only")
            new.append(_unify(t, ot, what(j)))
        if new == list(types):
            return new
        types = new
    raise TracingError(f"the types of the loop variables do not settle: {types}")


# ------------------------------------------------------------------------------------------------
# The structured statements
# ------------------------------------------------------------------------------------------------


def emit_while(cond_fn, body_fn, init, where: str, names=None, max_iterations=None,
               adjoint=None):
    """Record `while cond_fn(*v): v = body_fn(*v)` as one statement; returns the final values.
    The loop raises after `max_iterations` (default MAX_LOOP_ITERATIONS) iterations.
    `adjoint="fixed_point"` marks a loop carrying (x, x_prev) with body (step(x), x) and a
    convergence test on (x, x_prev): it is differentiated implicitly (`_fixed_point_vjp`)."""
    limit = _iteration_limit(max_iterations)
    def what(j):
        return f"loop variable `{names[j]}` (loop at {where})" if names else \
            f"loop value {j} (loop at {where})"

    types = _fixed_types(body_fn, [type_of(v) for v in init], "body", what)
    body, body_consts, _ = trace_region(body_fn, types, "body", types, what)
    cond, cond_consts, _ = trace_region(
        lambda *v: [_as_condition(cond_fn(*v), where)], types, "cond",
        [((), np.dtype(np.bool_))], lambda j: f"the condition at {where}")
    init = [_coerce(v, s, d, what(j)) for j, (v, (s, d)) in enumerate(zip(init, types))]
    extra = {} if adjoint is None else {"adjoint": adjoint}
    return bind_multi(Prim.while_loop, *cond_consts, *body_consts, *init,
                      cond=cond, body=body, save=False, max_iterations=limit, where=where,
                      **extra)


def _iteration_limit(max_iterations) -> int:
    limit = MAX_LOOP_ITERATIONS if max_iterations is None else max_iterations
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"max_iterations must be an int >= 0, not {limit!r}")
    return int(limit)


def loop_limit_message(where: str, limit: int) -> str:
    """What a compiled loop that reached its iteration limit raises (a RuntimeError) with."""
    return (f"the loop at {where} is still running after {limit:,} iterations, the limit for "
            f"a compiled loop; if it should run longer, pass max_iterations=... to "
            f"jitgrad.while_loop, or set jitgrad.control.MAX_LOOP_ITERATIONS (or the environment "
            f"variable JITGRAD_MAX_LOOP_ITERATIONS) before the function is first called")


def emit_cond(pred, true_fn, false_fn, operands, where: str, names=None):
    """Record `true_fn(*operands) if pred else false_fn(*operands)`; returns the results."""
    def what(j):
        if names:
            return f"`{names[j]}` (branches at {where})"
        return f"result {j} of the branches at {where}"

    types = [type_of(v) for v in operands]
    _, _, t_outs = trace_region(true_fn, types, "true", branch=True)
    _, _, f_outs = trace_region(false_fn, types, "false", branch=True)
    if len(t_outs) != len(f_outs):
        raise TracingError(f"the branches at {where} return {len(t_outs)} and {len(f_outs)} values")
    out_types = []
    for j, (a, b) in enumerate(zip(t_outs, f_outs)):
        if type_of(a) is None or type_of(b) is None:
            raise TracingError(f"{what(j)} is not a number or an array in both branches")
        out_types.append(_unify(type_of(a), type_of(b), what(j)))
    t_graph, t_consts, _ = trace_region(true_fn, types, "true", out_types, what, branch=True)
    f_graph, f_consts, _ = trace_region(false_fn, types, "false", out_types, what, branch=True)
    # Both branches take the operands and every captured value, so the statement has one list.
    t_types, f_types = [_like(c) for c in t_graph.consts], [_like(c) for c in f_graph.consts]
    t_graph = _with_inputs(t_graph, t_graph.consts, f_types, after=False)
    f_graph = _with_inputs(f_graph, f_graph.consts, t_types, after=True)
    return bind_multi(Prim.cond, _as_condition(pred, where), *operands, *t_consts, *f_consts,
                      true=t_graph, false=f_graph)


def _like(var):
    return var.shape, var.dtype


def _with_inputs(graph: Graph, captured, others, after: bool) -> Graph:
    """`graph` with its constants turned into inputs, and unused inputs of `others` types added
    before (after=True) or after its constants."""
    top = max([v.id for v in graph.inputs + graph.consts]
              + [v.id for s in graph.stmts for v in s.outs], default=-1)
    extra = tuple(Var(top + 1 + i, s, d) for i, (s, d) in enumerate(others))
    middle = extra + tuple(captured) if after else tuple(captured) + extra
    return Graph(graph.inputs + middle, (), graph.stmts, graph.outputs, graph.name)


# ------------------------------------------------------------------------------------------------
# Shape rules and the reference implementation
# ------------------------------------------------------------------------------------------------


def _while_rule(inputs, params):
    body = params["body"]
    carried = [(v.shape, v.dtype) for v in body.inputs]
    init = inputs[len(params["cond"].consts) + len(body.consts):]
    for (s, d), a in zip(carried, init):
        if (tuple(a.shape), a.dtype) != (s, d):
            raise ShapeError(f"while_loop: initial value {a!r} has type {a.shape} {a.dtype}, "
                             f"the body takes {s} {d}")
    if not params.get("save"):
        return carried
    return carried + [((-1,) + s, d) for s, d in carried] + [((), INT)]


def _outputs_rule(key):
    return lambda inputs, params: [(tuple(o.shape), o.dtype) for o in params[key].outputs]


CONTROL_RULES[Prim.while_loop] = _while_rule
def _scan_rule(inputs, params):
    """The carried values' types, then the stacked ys: (length, ...) when the length is a
    constant, else (-1, ...) (known when the loop runs)."""
    body, n_init = params["body"], len(inputs) - params["n_consts"] - params["n_xs"] - 1
    outs = [(tuple(o.shape), o.dtype) for o in body.outputs]
    length = inputs[params["n_consts"] + params["n_xs"]]
    rows = int(length.value) if isinstance(length, Lit) else -1
    return outs[:n_init] + [((rows,) + shape, dtype) for shape, dtype in outs[n_init:]]


CONTROL_RULES[Prim.scan] = _scan_rule
CONTROL_RULES[Prim.cond] = _outputs_rule("true")


def _while_impl(*args, cond, body, save=False, max_iterations=None, where="<unknown>",
                adjoint=None):
    nc, nb = len(cond.consts), len(body.consts)
    cond_consts, body_consts, values = args[:nc], args[nc:nc + nb], list(args[nc + nb:])
    tapes: list[list] = [[] for _ in values]
    limit = _iteration_limit(max_iterations)
    count = 0
    while bool(evaluate(cond, values, cond_consts)[0]):
        if count == limit:  # the same bound as the compiled loop's
            raise RuntimeError(loop_limit_message(where, limit))
        count += 1
        if save:
            for tape, v in zip(tapes, values):
                tape.append(np.array(v))
        values = evaluate(body, values, body_consts)
    if not save:
        return values
    stacked = [np.array(t, dtype=v.dtype).reshape((len(t),) + v.shape)
               for t, v in zip(tapes, body.inputs)]
    return values + stacked + [len(tapes[0]) if tapes else 0]


def _scan_impl(*args, body, n_consts, n_xs, reverse):
    consts, xs = list(args[:n_consts]), args[n_consts:n_consts + n_xs]
    length, carried = int(args[n_consts + n_xs]), list(args[n_consts + n_xs + 1:])
    rows = [[] for _ in body.outputs[len(carried):]]
    for k in range(length - 1, -1, -1) if reverse else range(length):
        out = evaluate(body, consts + [x[k] for x in xs] + carried, [])
        carried = out[:len(carried)]
        for row, y in zip(rows, out[len(carried):]):
            row.append(np.asarray(y))
    if reverse:
        rows = [row[::-1] for row in rows]
    ys = [np.array(row, dtype=o.dtype).reshape((length,) + tuple(o.shape))
          for row, o in zip(rows, body.outputs[len(carried):])]
    return carried + ys


def _cond_impl(pred, *operands, true, false):
    return evaluate(true if pred else false, operands, [])


IMPL[Prim.while_loop] = _while_impl
IMPL[Prim.scan] = _scan_impl
IMPL[Prim.cond] = _cond_impl

# ------------------------------------------------------------------------------------------------
# Reverse mode
# ------------------------------------------------------------------------------------------------


def _while_forward(stmt, args, mask):
    """The forward loop, saving its carried values for the adjoint loop (a loop that saves them
    already, differentiated again, has them among its results).  A fixed-point loop keeps only
    its final values."""
    if _implicit(stmt):
        outs = bind_multi(Prim.while_loop, *args, **stmt.params)
        return outs, outs
    outs = bind_multi(Prim.while_loop, *args, **{**stmt.params, "save": True})
    k = len(stmt.params["body"].inputs)
    return outs[:len(stmt.outs)], outs[k:]


def _loop_activity(body: Graph, const_active, init_active) -> list[bool]:
    """Which carried values have cotangents: a fixpoint, since the body feeds itself."""
    act = [a and v.dtype.kind in "fc" for a, v in zip(init_active, body.inputs)]
    while True:
        live = {c for c, a in zip(body.consts, const_active) if a}
        live |= {v for v, a in zip(body.inputs, act) if a}
        live = ad.dependents(body, live)
        new = [a or (isinstance(o, Var) and o in live and o.dtype.kind in "fc")
               for a, o in zip(act, body.outputs)]
        if new == act:
            return act
        act = new


def emit_scan(fn, xs, length, init, ys_types, reverse: bool, name: str = "scan"):
    """Record `for k in range(length)` (backwards if `reverse`) of `carried, y_k = fn(*rows_k,
    *carried)`, where rows_k are the k-th rows of `xs`: (final carried values, the stacked
    ys).  Values `fn` captures from the enclosing trace are the loop's constants."""
    in_types = [(tuple(x.shape[1:]), x.dtype) for x in xs] + [type_of(v) for v in init]
    out_types = [type_of(v) for v in init] + list(ys_types)
    graph, captured, _ = trace_region(fn, in_types, name, out_types,
                                      lambda j: f"value {j} of a scan")
    body = Graph(graph.consts + graph.inputs, (), graph.stmts, graph.outputs, name)
    outs = bind_multi(Prim.scan, *captured, *xs, length, *init, body=body,
                      n_consts=len(captured), n_xs=len(xs), reverse=reverse)
    return list(outs[:len(init)]), list(outs[len(init):])


def _zeros_like(v):
    return full(v.shape, 0.0, v.dtype)


def _implicit(stmt) -> bool:
    """Whether a while loop is differentiated implicitly: a fixed-point loop (emit_while's
    `adjoint`) whose carried values are all floating-point."""
    return (stmt.params.get("adjoint") == "fixed_point" and not stmt.params.get("save")
            and all(v.dtype.kind in "fc" for v in stmt.params["body"].inputs))


def _fixed_point_vjp(stmt, residuals, gs, args, mask):
    """The implicit adjoint of `x* = step(x*)` (autograd.misc.fixed_points): the cotangent w of
    x* solves w = g + (d step / d x)^T w, found by the same iteration and convergence test as
    the forward loop (from w = g, w_prev = 0); the constants' cotangent is (d step / d c)^T w,
    and the starting point has none.  No iteration is stored.  That iteration is a fixed point
    too, differentiated the same way again (autograd's second derivatives)."""
    cond, body = stmt.params["cond"], stmt.params["body"]
    nc, nb, k = len(cond.consts), len(body.consts), len(body.inputs)
    n = k // 2  # carried: x, then x_prev
    if any(g is not None for g in gs[n:]):
        raise JitgradInternalError("a fixed-point loop's previous iterate has a cotangent")
    cond_consts, consts, final = args[:nc], args[nc:nc + nb], residuals[:k]
    act_consts = [i for i in range(nb) if mask[nc + i] and body.consts[i].dtype.kind in "fc"]
    region = Graph(body.consts + body.inputs, (), body.stmts, body.outputs, "step")
    seeded = tuple(range(n))
    vjp_x = dce(ad.vjp_graph(region, tuple(nb + j for j in range(n)), seeded))
    g = [gs[j] if gs[j] is not None else _zeros_like(body.inputs[j]) for j in range(n)]

    def adjoint_step(*w):
        back = evaluate(vjp_x, list(consts) + list(final) + list(w[:n]), [])
        return [a + b for a, b in zip(g, back)] + list(w[:n])

    w = emit_while(lambda *w: evaluate(cond, list(w), list(cond_consts))[0], adjoint_step,
                   g + [_zeros_like(v) for v in body.inputs[:n]],
                   f"{stmt.params.get('where', '<unknown>')} (the adjoint fixed point)",
                   max_iterations=stmt.params.get("max_iterations"), adjoint="fixed_point")[:n]
    contributions = [None] * len(args)
    if act_consts:
        vjp_c = dce(ad.vjp_graph(region, tuple(act_consts), seeded))
        for i, c in zip(act_consts, evaluate(vjp_c, list(consts) + list(final) + list(w), [])):
            contributions[nc + i] = c
    return contributions


def _while_vjp(stmt, residuals, gs, args, mask):
    """The adjoint of a while loop: a scan backwards over its saved carried values, running the
    body's VJP.  Scans are differentiable themselves (`_scan_vjp`), so this is too."""
    if _implicit(stmt):
        return _fixed_point_vjp(stmt, residuals, gs, args, mask)
    cond, body = stmt.params["cond"], stmt.params["body"]
    nc, nb, k = len(cond.consts), len(body.consts), len(body.inputs)
    const_active = mask[nc:nc + nb]
    carried_active = _loop_activity(body, const_active, mask[nc + nb:])
    act = [j for j in range(k) if carried_active[j]]
    act_consts = [i for i in range(nb) if const_active[i]]
    region = Graph(body.consts + body.inputs, (), body.stmts, body.outputs, "body")
    vjp = dce(ad.vjp_graph(region, tuple(act_consts) + tuple(nb + j for j in act), tuple(act)))
    tapes, count = residuals[:k], residuals[k]
    # A loop that saved its carried values may have cotangents for them (from a first adjoint):
    # each one adds to the cotangent of the values the iteration started from.
    g_tapes = {j: gs[k + j] for j in act if len(gs) > k and gs[k + j] is not None}
    consts = args[nc:nc + nb]

    def step(*values):
        rows, g_rows = values[:k], values[k:k + len(g_tapes)]
        rest = values[k + len(g_tapes):]
        sums, g = rest[:len(act_consts)], rest[len(act_consts):]
        out = evaluate(vjp, list(consts) + list(rows) + list(g), [])
        new_g = list(out[len(act_consts):])
        for g_row, j in zip(g_rows, g_tapes):
            new_g[act.index(j)] = new_g[act.index(j)] + g_row
        return [a + b for a, b in zip(sums, out[:len(act_consts)])] + new_g

    init = [_zeros_like(body.consts[i]) for i in act_consts]
    init += [gs[j] if gs[j] is not None else _zeros_like(body.inputs[j]) for j in act]
    outs, _ = emit_scan(step, list(tapes) + list(g_tapes.values()), count, init, (),
                        reverse=True, name="body_vjp")
    contributions = [None] * len(args)
    for n, i in enumerate(act_consts):
        contributions[nc + i] = outs[n]
    for n, j in enumerate(act):
        contributions[nc + nb + j] = outs[len(act_consts) + n]
    return contributions


def _scan_forward(stmt, args, mask):
    """The forward scan, also stacking the carried values each step starts from."""
    p, body = stmt.params, stmt.params["body"]
    n_init = len(args) - p["n_consts"] - p["n_xs"] - 1
    carried_in = body.inputs[len(body.inputs) - n_init:]
    saving = Graph(body.inputs, (), body.stmts, tuple(body.outputs) + tuple(carried_in), "scan")
    outs = bind_multi(Prim.scan, *args, **{**p, "body": saving})
    return outs[:len(stmt.outs)], outs[len(stmt.outs):]


def _scan_vjp(stmt, residuals, gs, args, mask):
    """The adjoint of a scan: a scan the other way over the saved carried values (and the xs
    rows, and the ys' cotangents), accumulating the constants' cotangents and stacking the xs'."""
    p, body = stmt.params, stmt.params["body"]
    nc, nx = p["n_consts"], p["n_xs"]
    n_init = len(args) - nc - nx - 1
    consts, xs, length = args[:nc], args[nc:nc + nx], args[nc + nx]
    n_y = len(body.outputs) - n_init
    float_ = [v.dtype.kind in "fc" for v in body.inputs]
    act_consts = [i for i in range(nc) if mask[i] and float_[i]]
    act_xs = [i for i in range(nx) if mask[nc + i] and float_[nc + i]]
    act = [j for j in range(n_init) if float_[nc + nx + j]]
    g_ys = {i: gs[n_init + i] for i in range(n_y) if gs[n_init + i] is not None}
    wrt = tuple(act_consts) + tuple(nc + i for i in act_xs) + tuple(nc + nx + j for j in act)
    vjp = dce(ad.vjp_graph(body, wrt, tuple(act) + tuple(n_init + i for i in g_ys)))
    na, nxa = len(act_consts), len(act_xs)

    def step(*values):
        x_rows, c_rows = values[:nx], values[nx:nx + n_init]
        gy_rows = values[nx + n_init:nx + n_init + len(g_ys)]
        sums, g = values[nx + n_init + len(g_ys):][:na], values[nx + n_init + len(g_ys) + na:]
        out = evaluate(vjp, list(consts) + list(x_rows) + list(c_rows) + list(g)
                       + list(gy_rows), [])
        return [a + b for a, b in zip(sums, out[:na])] + list(out[na + nxa:]) \
            + list(out[na:na + nxa])

    init = [_zeros_like(body.inputs[i]) for i in act_consts]
    init += [gs[j] if gs[j] is not None else _zeros_like(body.inputs[nc + nx + j]) for j in act]
    ys_types = [(tuple(body.inputs[nc + i].shape), body.inputs[nc + i].dtype) for i in act_xs]
    outs, ys = emit_scan(step, list(xs) + list(residuals) + list(g_ys.values()), length, init,
                         ys_types, reverse=not p["reverse"], name=body.name + "_vjp")
    contributions = [None] * len(args)
    for n, i in enumerate(act_consts):
        contributions[i] = outs[n]
    for n, i in enumerate(act_xs):
        contributions[nc + i] = ys[n]
    for n, j in enumerate(act):
        contributions[nc + nx + 1 + j] = outs[na + n]
    return contributions


def _cond_vjp(stmt, residuals, gs, args, mask):
    true, false = stmt.params["true"], stmt.params["false"]
    wrt = tuple(i for i, m in enumerate(mask[1:]) if m)
    seeded = tuple(j for j, g in enumerate(gs) if g is not None)
    t_vjp = dce(ad.vjp_graph(true, wrt, seeded))
    f_vjp = dce(ad.vjp_graph(false, wrt, seeded))
    outs = bind_multi(Prim.cond, args[0], *args[1:], *[gs[j] for j in seeded],
                      true=Graph(t_vjp.inputs, (), t_vjp.stmts, t_vjp.outputs, "true_vjp"),
                      false=Graph(f_vjp.inputs, (), f_vjp.stmts, f_vjp.outputs, "false_vjp"))
    contributions = [None] * len(args)
    for n, i in enumerate(wrt):
        contributions[1 + i] = outs[n]
    return contributions


ad.FORWARD[Prim.while_loop] = _while_forward
ad.JOINT[Prim.while_loop] = _while_vjp
ad.JOINT[Prim.cond] = _cond_vjp
ad.FORWARD[Prim.scan] = _scan_forward
ad.JOINT[Prim.scan] = _scan_vjp

# ------------------------------------------------------------------------------------------------
# The explicit primitives (JAX's signatures)
# ------------------------------------------------------------------------------------------------


def while_loop(cond_fun, body_fun, init_val, max_iterations=None):
    """`val = init_val; while cond_fun(val): val = body_fun(val)`, compiled into one native loop
    and differentiable in reverse mode.  `init_val` may be a tuple/list/dict of arrays and
    numbers; `body_fun` must return the same structure.  Outside a trace, plain Python.
    A loop still running after `max_iterations` iterations (default MAX_LOOP_ITERATIONS) raises
    a RuntimeError naming it.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import grad, while_loop
    >>> def f(x):
    ...     return while_loop(lambda v: v[0] < 5, lambda v: (v[0] + 1, v[1] * x), (0, 1.0))[1]
    >>> grad(f)(2.0)  # d/dx x**5 = 5 x**4
    80.0
    """
    if innermost_trace() is None:
        limit, count, val = _iteration_limit(max_iterations), 0, init_val
        while converted_call(cond_fun, val):
            if count == limit:
                raise RuntimeError(loop_limit_message(user_frame(), limit))
            count += 1
            val = converted_call(body_fun, val)
        return val
    leaves: list = []
    tree = flatten(init_val, leaves)
    where = user_frame()

    def body(*values):
        out_leaves: list = []
        out_tree = flatten(converted_call(body_fun, unflatten(tree, iter(values))), out_leaves)
        if out_tree != tree:
            raise TracingError(f"while_loop at {where}: body_fun returned a different structure "
                               f"than init_val")
        return out_leaves

    final = emit_while(lambda *v: converted_call(cond_fun, unflatten(tree, iter(v))), body,
                       leaves, where, max_iterations=max_iterations)
    return unflatten(tree, iter(final))


def fori_loop(lower, upper, body_fun, init_val):
    """`for i in range(lower, upper): val = body_fun(i, val)`, compiled into one native loop.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import fori_loop
    >>> fori_loop(0, 4, lambda i, v: v + i, 0.0)
    6.0
    """
    if innermost_trace() is None:
        val = init_val
        for i in range(operator.index(lower), operator.index(upper)):
            val = converted_call(body_fun, i, val)
        return val
    start = lower if isinstance(lower, Tracer) else full((), lower, INT)
    i, val = while_loop(lambda s: s[0] < upper,
                        lambda s: (s[0] + 1, converted_call(body_fun, s[0], s[1])),
                        (start, init_val), max_iterations=_trip_bound(lower, upper))
    return val


def _trip_bound(lower, upper, step=1):
    """A loop over a concrete range ends by itself: its limit is at least its trip count."""
    if isinstance(lower, Tracer) or isinstance(upper, Tracer):
        return None
    return max(MAX_LOOP_ITERATIONS, len(range(operator.index(lower), operator.index(upper), step)))


def cond(pred, true_fun, false_fun, *operands):
    """`true_fun(*operands) if pred else false_fun(*operands)`, with `pred` a traced scalar:
    both branches are compiled, one runs.  Differentiable in reverse mode.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import cond, grad
    >>> f = lambda x: cond(x > 0, lambda x: x ** 2, lambda x: -x, x)
    >>> grad(f)(3.0), grad(f)(-3.0)
    (6.0, -1.0)
    """
    if not isinstance(pred, Tracer):
        return converted_call(true_fun if pred else false_fun, *operands)
    leaves: list = []
    tree = flatten(tuple(operands), leaves)
    where = user_frame()
    trees = {}

    def branch(fn, key):
        def run(*values):
            out_leaves: list = []
            trees[key] = flatten(converted_call(fn, *unflatten(tree, iter(values))), out_leaves)
            return out_leaves
        return run

    outs = emit_cond(pred, branch(true_fun, True), branch(false_fun, False), leaves, where)
    if trees[True] != trees[False]:
        raise TracingError(f"cond at {where}: the branches return different structures")
    return unflatten(trees[True], iter(outs))


# ------------------------------------------------------------------------------------------------
# The runtime of converted Python control flow (see convert/)
# ------------------------------------------------------------------------------------------------


class Undefined:
    """A variable that has no value on this path (assigned later, or in one branch only)."""

    __slots__ = ("name", "why")

    def __init__(self, name: str, why: str = ""):
        self.name, self.why = name, why

    def __repr__(self) -> str:
        return f"<undefined {self.name}>"

    def _fail(self, *args, **kwargs):
        why = f" ({self.why})" if self.why else ""
        raise TracingError(f"variable `{self.name}` is used where it has no value{why}")

    __getattr__ = __call__ = __bool__ = __float__ = __int__ = __index__ = __len__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __matmul__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __iter__ = _fail


def _numeric_positions(values) -> list[int]:
    return [j for j, v in enumerate(values) if not isinstance(v, Undefined) and type_of(v)]


def if_stmt(cond_value, true_fn, false_fn, init, names, where):
    """`if cond_value:` with `true_fn`/`false_fn` returning the new values of `names`."""
    if not isinstance(cond_value, Tracer):
        return tuple((true_fn if cond_value else false_fn)(*init))
    init = list(init)
    ops = _numeric_positions(init)

    def run(fn):
        def branch(*values):
            full_values = list(init)
            for p, v in zip(ops, values):
                full_values[p] = v
            return list(fn(*full_values))
        return branch

    # First look at what each branch leaves in every variable, then compile the numeric ones.
    _, _, t_out = trace_region(run(true_fn), [type_of(init[p]) for p in ops], "true",
                               branch=True)
    _, _, f_out = trace_region(run(false_fn), [type_of(init[p]) for p in ops], "false",
                               branch=True)
    fill = _placeholders(names, t_out, f_out)
    if fill:
        run = _filling(run, fill)
        _, _, t_out = trace_region(run(true_fn), [type_of(init[p]) for p in ops], "true")
        _, _, f_out = trace_region(run(false_fn), [type_of(init[p]) for p in ops], "false")
    result, traced = list(init), []
    for j, (a, b) in enumerate(zip(t_out, f_out)):
        if isinstance(a, Undefined) and isinstance(b, Undefined):
            result[j] = init[j]  # assigned in neither branch: as it was
        elif isinstance(a, Undefined) or isinstance(b, Undefined):
            result[j] = Undefined(names[j], f"it is assigned in only one branch of the `if` at "
                                            f"{where}, whose condition is traced")
        elif type_of(a) is not None and type_of(b) is not None:
            traced.append(j)
        elif a is b or (type(a) is type(b) and _same(a, b)):
            result[j] = a
        else:
            raise TracingError(f"`{names[j]}` holds different {type(a).__name__} values in the "
                               f"branches of the `if` at {where}, whose condition is traced; "
                               f"only numbers and arrays can differ between branches")
    if not traced:
        return tuple(result)

    def pick(fn):
        return lambda *values: [fn(*values)[j] for j in traced]

    outs = emit_cond(cond_value, pick(run(true_fn)), pick(run(false_fn)),
                     [init[p] for p in ops], where, [names[j] for j in traced])
    for j, o in zip(traced, outs):
        result[j] = o
    return tuple(result)


def _placeholders(names, *outs) -> dict:
    """The value of a loop's `return` (convert/jump_statements.py) is read only on the path that
    set it: where one path leaves it unset and another sets a number or array, it gets zeros of
    that type on the first.  {position: (shape, dtype)}."""
    from .convert.jump_statements import LOOP_RETURN

    fill = {}
    for j, name in enumerate(names):
        if name.startswith(LOOP_RETURN):
            values = [o[j] for o in outs]
            types = [type_of(v) for v in values if not isinstance(v, Undefined)]
            if types and len(types) < len(values) and types[0] is not None:
                fill[j] = types[0]
    return fill


def _filling(run, fill):
    def filled_run(fn):
        inner = run(fn)

        def branch(*values):
            out = inner(*values)
            for j, (shape, dtype) in fill.items():
                if isinstance(out[j], Undefined):
                    out[j] = full(shape, 0, dtype)
            return out
        return branch
    return filled_run


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def and_(*operands):
    """`a and b and ...` (each operand a thunk): Python's meaning while the values are concrete
    (the first false one is the result, and later operands are not evaluated); once one is
    traced, the rest are evaluated and the result is chosen elementwise, as Python would pick."""
    value = operands[0]()
    for k, thunk in enumerate(operands[1:], 1):
        if isinstance(value, Tracer):
            from . import numpy as jnp
            return jnp.where(value, and_(*operands[k:]), value)
        if not value:
            return value
        value = thunk()
    return value


def or_(*operands):
    """`a or b or ...` (each operand a thunk), as `and_`: the first true one is the result."""
    value = operands[0]()
    for k, thunk in enumerate(operands[1:], 1):
        if isinstance(value, Tracer):
            from . import numpy as jnp
            return jnp.where(value, value, or_(*operands[k:]))
        if value:
            return value
        value = thunk()
    return value


def not_(value):
    if isinstance(value, Tracer):
        from . import numpy as jnp
        return jnp.logical_not(value)
    return not value


def if_exp(cond_value, true_fn, false_fn, where):
    """`x if c else y` (the branches thunks): one branch for a concrete `c`, else a compiled
    branch, so that the branch not taken is not evaluated on the values that take the other
    (its NaNs cannot reach the gradient)."""
    if not isinstance(cond_value, Tracer):
        return true_fn() if cond_value else false_fn()
    (value,) = if_stmt(cond_value, lambda _: (true_fn(),), lambda _: (false_fn(),),
                       (Undefined("<expression>"),), ("the conditional expression",), where)
    return value


def range_bounds(*args):
    """(start, stop, step) of `range(*args)`, for a `for` loop lowered to a `while`."""
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (tuple(args) + (1,))[:3]
    if isinstance(step, Tracer):
        raise TracingError(f"the step of a range must not be a traced value (at {user_frame()})")
    step = operator.index(step)
    if step == 0:
        raise ValueError("range() arg 3 must not be zero")
    return (start if isinstance(start, Tracer) else operator.index(start),
            stop if isinstance(stop, Tracer) else operator.index(stop), step)


def in_range(k, bounds):
    return k < bounds[1] if bounds[2] > 0 else k > bounds[1]


def range_step(bounds):
    return bounds[2]


def while_stmt(cond_fn, body_fn, init, names, where, max_iterations=None):
    """`while cond_fn(*v): v = body_fn(*v)` over the variables `names`."""
    values = tuple(init)
    steps = 0
    while True:
        c = cond_fn(*values)
        if isinstance(c, Tracer):
            break
        if not c:
            return values
        if steps >= UNROLL_LIMIT and any(isinstance(v, Tracer) for v in values):
            break  # a long loop over traced values: compile the rest as a loop
        values = tuple(body_fn(*values))
        steps += 1
    carried = _numeric_positions(values)
    fixed = {j: v for j, v in enumerate(values) if j not in carried}
    if any(isinstance(v, Undefined) for v in fixed.values()):
        # A loop's `return` value, unset until the iteration that returns: carried as zeros of
        # the type one traced iteration gives it.
        _, _, outs = trace_region(
            lambda *v: body_fn(*[fixed[j] if j in fixed else v[carried.index(j)]
                                 for j in range(len(values))]),
            [type_of(values[p]) for p in carried], "body")
        fill = _placeholders(names, values, outs)
        if fill:
            values = tuple(full(fill[j][0], 0, fill[j][1]) if j in fill else v
                           for j, v in enumerate(values))
            carried = _numeric_positions(values)
            fixed = {j: v for j, v in enumerate(values) if j not in carried}

    def merge(vals):
        full_values = [fixed.get(j) for j in range(len(values))]
        for p, v in zip(carried, vals):
            full_values[p] = v
        return full_values

    def body(*vals):
        out = tuple(body_fn(*merge(vals)))
        for j, v in fixed.items():
            if not isinstance(v, Undefined) and not (out[j] is v or _same(out[j], v)):
                raise TracingError(f"`{names[j]}` (a {type(v).__name__}) changes inside the "
                                   f"loop at {where}, whose condition is traced; only numbers "
                                   f"and arrays can change in a compiled loop")
        return [out[p] for p in carried]

    final = emit_while(lambda *v: cond_fn(*merge(v)), body, [values[p] for p in carried], where,
                       [names[p] for p in carried], max_iterations)
    result = merge(final)
    for j, v in fixed.items():
        if isinstance(v, Undefined):
            result[j] = Undefined(names[j], f"it is assigned only inside the compiled loop at "
                                            f"{where}; give it a value before the loop")
    return tuple(result)


def for_range_stmt(range_args, body_fn, init, names, where):
    """`for i in range(*range_args):` with `body_fn(i, *v)` returning the new values of `names`.
    Unrolled when the range is concrete and short; otherwise a compiled loop."""
    concrete = not any(isinstance(a, Tracer) for a in range_args)
    if concrete:
        r = range(*(operator.index(a) for a in range_args))
        if len(r) <= UNROLL_LIMIT or innermost_trace() is None:
            values = tuple(init)
            for i in r:
                values = tuple(body_fn(i, *values))
            return values
        try:
            return _for_range_compiled(r.start, r.stop, r.step, body_fn, init, names, where)
        except (TracingError, TypeError):
            # The body needs `i` as a Python int (an index, a shape, `i % 2`): unroll after all.
            # (A genuine error in the body raises again from the unrolled loop.)
            values = tuple(init)
            for i in r:
                values = tuple(body_fn(i, *values))
            return values
    start, stop, step = (0, range_args[0], 1) if len(range_args) == 1 else (
        tuple(range_args) + (1,))[:3]
    if isinstance(step, Tracer):
        raise TracingError(f"the step of the range at {where} must not be a traced value")
    return _for_range_compiled(start, stop, operator.index(step), body_fn, init, names, where)


def _for_range_compiled(start, stop, step, body_fn, init, names, where):
    if step == 0:
        raise ValueError("range() arg 3 must not be zero")
    i0 = start if isinstance(start, Tracer) else full((), start, INT)

    def cond_fn(i, *v):
        return i < stop if step > 0 else i > stop

    def body(i, *v):
        return (i + step,) + tuple(body_fn(i, *v))

    out = while_stmt(cond_fn, body, (i0,) + tuple(init), ("<range index>",) + tuple(names), where,
                     _trip_bound(start, stop, step))
    return out[1:]


_NOT_CONVERTED = ("jitgrad", "numpy", "numba", "scipy", "builtins", "functools", "math")


def converted_call(f, /, *args, **kwargs):
    """Call `f`, converting its control flow (and its reads of the user's scope, see `ld`) first
    if it is a user's Python function.  While tracing, what `f` can read outside its arguments is
    watched (watch.py); a `functools.partial` is called through its function, with its bound
    arguments read like globals; a callable object through its `__call__`; a random number
    generator's method becomes a draw made afresh before every kernel call (see `_draw`)."""
    if active_traces() and _is_random(f):
        return _draw(f, args, kwargs)
    if active_traces() and _makes_generator(f):
        return _make_generator(f, args, kwargs)
    if type(f) is functools.partial and active_traces():
        keywords = {k: ld(v) for k, v in f.keywords.items()}
        return converted_call(f.func, *map(ld, f.args), *args, **{**keywords, **kwargs})
    if isinstance(f, (pytypes.FunctionType, pytypes.MethodType)):
        module = (getattr(f, "__module__", None) or "").split(".")[0]
        if module not in _NOT_CONVERTED:
            f = _converted(f)
    elif active_traces() and not isinstance(f, type) and not _library_object(f):
        call = getattr(type(f), "__call__", None)
        if isinstance(call, pytypes.FunctionType):
            return converted_call(pytypes.MethodType(call, f), *args, **kwargs)
    if active_traces() and isinstance(f, pytypes.BuiltinFunctionType) \
            and getattr(f, "__module__", None) in ("math", "cmath") \
            and any(isinstance(a, Tracer) for a in args) and not _all_known(args):
        name = f.__name__
        hint = f"np.{name}" if hasattr(sys.modules["jitgrad.numpy"], name) else "jitgrad.numpy"
        raise TracingError(
            f"{f.__module__}.{name} was given a traced value (at {user_frame()}): the math "
            f"module computes with Python floats only. Use {hint} (import jitgrad.numpy as np), "
            f"which traces.")
    return f(*args, **kwargs)


def _all_known(args) -> bool:
    return all(a._known() is not None for a in args if isinstance(a, Tracer))


def _converted(f):
    from .convert import convert, is_user_function

    g = convert(f)
    if not active_traces():
        return g
    fn = f.__func__ if isinstance(f, pytypes.MethodType) else f
    if g is f:
        if is_user_function(fn):
            watch.watch_function(fn)  # unconverted: what it read may be folded
        return g
    watch.watch_function(fn, contents=False)
    new = g.__func__ if isinstance(g, pytypes.MethodType) else g
    if new.__defaults__:
        new.__defaults__ = tuple(ld(d) for d in new.__defaults__)
    if new.__kwdefaults__:
        new.__kwdefaults__ = {k: ld(v) for k, v in new.__kwdefaults__.items()}
    return g


_RANDOM_TYPES = (np.random.RandomState, np.random.Generator, random.Random)


def _is_random(f) -> bool:
    """Whether `f` is a method of a random number generator (`numpy.random.randn` is one of the
    global RandomState), including `seed`: every call on it is replayed in order."""
    return isinstance(getattr(f, "__self__", None), _RANDOM_TYPES)


# What makes a generator: one made while tracing is made afresh before every kernel call too,
# and the draws from it are replayed on the new one (run eagerly, `default_rng(0)` in the body
# gives the same numbers at every call; replayed on the traced generator, they would not).
_GENERATOR_MAKERS = (np.random.default_rng, np.random.RandomState, np.random.Generator,
                     random.Random)


class Made:
    """A draws entry recording that the traced code made the generator `generator`."""

    __slots__ = ("generator",)

    def __init__(self, generator):
        self.generator = generator


def _makes_generator(f) -> bool:
    return any(f is maker for maker in _GENERATOR_MAKERS)


def _make_generator(f, args, kwargs):
    traces = active_traces()
    if any(t.draws is None for t in traces):
        return f(*args, **kwargs)  # in a region: its draws are refused by _draw anyway
    generator = f(*args, **kwargs)
    for t in traces:
        t.draws.append((f, args, kwargs, Made(generator)))
    return generator


def _draw(f, args, kwargs):
    """A random draw in traced code is made now and becomes a kernel argument; the call is
    recorded on the trace and made again, in the same order, before every call of the kernel,
    so each gradient sees fresh numbers, as the function run eagerly (or by autograd) would."""
    traces = active_traces()
    leaves: list = []
    flatten((args, kwargs), leaves)
    if any(isinstance(x, Tracer) for x in leaves):
        raise TracingError(
            f"{getattr(f, '__name__', 'a random draw')} was called with a traced parameter (at "
            f"{user_frame()}): jitgrad replays random draws before each kernel call, so their "
            f"parameters must be fixed. Draw standard variates and transform them instead, "
            f"for example `mu + sigma * rs.standard_normal(shape)`.")
    if any(t.draws is None for t in traces):
        raise TracingError(
            f"a random draw inside a compiled loop or branch (at {user_frame()}) is not "
            f"supported: the loop body is traced once, so it would draw once. Draw the numbers "
            f"before the loop (one row per iteration) and index them in the loop.")
    value = f(*args, **kwargs)
    array = None if value is None else np.asarray(value)  # None: seed, shuffle, ...
    if array is not None and array.dtype.kind not in "biufc":
        raise TracingError(f"a random draw of {array.dtype} values (at {user_frame()}) cannot "
                           f"be replayed in a kernel; only numbers can")
    for t in traces:  # an enclosing grad (of grad) replays it too
        t.draws.append((f, args, kwargs, array))
    return None if array is None else Tracer(traces[-1], traces[-1].const(array))


def ld(value):
    """A value that converted code read from the user's scope (a global, a closure variable, an
    attribute, a default).  While tracing, an array becomes a kernel argument of the innermost
    trace -- read afresh at every call, so that changing it in place is seen -- and a list, tuple
    or dict is watched and its arrays become kernel arguments the same way."""
    trace = innermost_trace()
    if trace is None:
        return value
    if isinstance(value, np.ndarray):
        return _lifted(trace, value)
    if type(value) in (list, tuple, dict) or (isinstance(value, tuple)
                                               and hasattr(value, "_fields")):
        watch.watch_tree(value)
        leaves: list = []
        tree = flatten(value, leaves)
        if any(isinstance(x, np.ndarray) for x in leaves):
            return unflatten(tree, iter([_lifted(trace, x) if isinstance(x, np.ndarray) else x
                                         for x in leaves]))
    return value


make_slice = slice


def subscript(value, index):
    """`value[index]` read by converted code.  A NumPy array indexed with traced integers is
    gathered in the trace (NumPy itself would try to convert them to an array)."""
    if isinstance(value, np.ndarray) and (isinstance(index, Tracer) or (
            type(index) is tuple and any(isinstance(i, Tracer) for i in index))):
        from .numpy._arrays import getitem
        return getitem(value, index)
    return value[index]


def _lifted(trace, array):
    if array.dtype.kind not in "biufc":
        return array
    base = array if type(array) is np.ndarray else array.view(np.ndarray)
    return Tracer(trace, trace.const(base, key=array))


def attr(obj, name: str):
    """`obj.name` read by converted code: watched (unless `obj` belongs to a library, or is a
    traced value), and arrays become kernel arguments, as for `ld`."""
    value = getattr(obj, name)
    if isinstance(obj, Tracer) or not active_traces() or _library_object(obj):
        return value
    watch.watch_attr(obj, name, value)
    return ld(value)


_LIBRARY_TYPES = (Tracer, np.ndarray, np.generic, int, float, complex, str, bytes, tuple, list,
                  dict, set, frozenset, type(None), pytypes.BuiltinFunctionType)


def _library_object(obj) -> bool:
    """Whether `obj`'s attributes are a library's business (a library module or class, a value
    of a builtin or library type), which jitgrad does not watch."""
    from .convert import is_library_module

    if isinstance(obj, pytypes.ModuleType):
        return is_library_module(obj.__name__, getattr(obj, "__file__", None))
    if isinstance(obj, _LIBRARY_TYPES):
        return True
    cls = obj if isinstance(obj, type) else type(obj)
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    return module is not None and is_library_module(module.__name__,
                                                    getattr(module, "__file__", None))
