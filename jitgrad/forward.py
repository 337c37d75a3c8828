"""Forward mode as an IR-to-IR transform.

`jvp_graph` replays a traced graph inside a new trace and, statement by statement in program
order, computes each result's tangent from its operands' tangents: the output graph takes the
inputs and their tangents and returns the outputs and theirs.  Like the reverse pass it is
ordinary IR, so the tangents fuse into the same loops as the values and compile into one kernel.

Where the rules come from (no primitive needs a second, hand-written rule):
- elementwise primitives and ops: their Jacobian is diagonal, so the JVP of an operand's
  tangent t is its VJP rule applied to t broadcast to the result (autograd's convention,
  transposes and not conjugate transposes, makes a diagonal its own transpose); a real result
  keeps the real part;
- the linear shape primitives (slice, reshape, transpose, broadcast, sum, scatter-add,
  conversion) apply themselves to the tangent; matmul is bilinear;
- every other op (the `call` ops: linear algebra, FFTs, sorts, gathers...) transposes its VJP
  rule, a linear map of the cotangent, by reverse mode through it (`_transposed`), unless it
  has a forward rule of its own (`Op.jvp`: a custom primitive's `defjvp`);
- loops and branches carry their tangents along: a while loop, a scan and a branch of the
  tangent program, with no tape (forward mode stores nothing per iteration).  The values come
  from the original statement, so a loop runs twice, once for the values alone.
"""

from __future__ import annotations

import numpy as onp

from . import ad
from . import numpy as np
from .errors import JitgradInternalError, TracingError
from .fuse import dce
from .interpret import evaluate
from .ir import Graph, Lit, Var
from .primitives import Prim
from .trace import Trace, Tracer, bind, bind_multi, full

# Linear in their one operand: the tangent goes through the statement itself.
_LINEAR = frozenset({Prim.neg, Prim.convert, Prim.broadcast_to, Prim.slice, Prim.transpose,
                     Prim.reshape, Prim.reduce_sum})
_DIAGONAL = frozenset({
    Prim.exp, Prim.log, Prim.log1p, Prim.expm1, Prim.sqrt, Prim.sin, Prim.cos, Prim.tan,
    Prim.tanh, Prim.sinh, Prim.cosh, Prim.arcsin, Prim.arccos, Prim.arctan, Prim.abs,
    Prim.add, Prim.sub, Prim.mul, Prim.div, Prim.pow, Prim.maximum, Prim.minimum, Prim.where})


def jvp_graph(graph: Graph, const_values, wrt: tuple[int, ...]) -> tuple[Graph, list]:
    """A graph taking graph.inputs and a tangent for each graph.inputs[i], i in `wrt`,
    returning graph.outputs followed by their tangents; and its constant values."""
    active = [i in wrt for i in range(len(graph.inputs))]
    return _forward(graph, const_values, active, [True] * len(graph.outputs))


def jvp_region(graph: Graph, active_in, active_out) -> tuple[Graph, list]:
    """The JVP of a region: inputs graph.inputs then a tangent per active input; outputs
    graph.outputs then a tangent per active output (zeros where none reaches it)."""
    return _forward(graph, [], active_in, active_out)


def _forward(graph, const_values, active_in, active_out):
    trace = Trace(graph.name + "_jvp")
    with trace:
        env: dict[Var, object] = {v: trace.new_input(v.shape, v.dtype) for v in graph.inputs}
        tangents: dict[Var, object] = {}
        for v, a in zip(graph.inputs, active_in):
            if a:
                if v.dtype.kind not in "fc":
                    raise JitgradInternalError(f"a tangent for the {v.dtype} input {v}")
                tangents[v] = trace.new_input(v.shape, v.dtype)
        for v, value in zip(graph.consts, const_values):
            env[v] = Tracer(trace, trace.const(value))
        propagate(graph.stmts, env, tangents)
        outs = [_read(env, y) for y in graph.outputs]
        for y, a in zip(graph.outputs, active_out):
            if a:
                t = tangents.get(y) if isinstance(y, Var) else None
                outs.append(_zeros(y) if t is None else t)
        out = trace.finish(outs)
    return out, trace.const_values


def _read(env, a):
    return a.value if isinstance(a, Lit) else env[a]


def _zeros(v):
    return full(v.shape, 0.0, v.dtype if v.dtype.kind in "fc" else onp.float64)


def propagate(stmts, env: dict, tangents: dict) -> None:
    """Evaluate `stmts` into `env` (on tracers: recording them), and the tangents of their
    float results into `tangents`."""
    for stmt in stmts:
        args = [_read(env, a) for a in stmt.inputs]
        targs = [tangents.get(a) if isinstance(a, Var) else None for a in stmt.inputs]
        if all(t is None for t in targs) or _constant(stmt):
            outs = (bind_multi(stmt.prim, *args, **stmt.params) if stmt.prim in _MULTI
                    else (bind(stmt.prim, *args, **stmt.params),))
            env.update(zip(stmt.outs, outs))
            continue
        rule = CONTROL_JVPS.get(stmt.prim)
        if rule is not None:
            # The values from the statement itself, the tangents from a loop (branch) carrying
            # both: the values never depend on tangents, so a Jacobian's loop over tangents
            # (interpret.Staged) computes them once, outside it.
            outs = bind_multi(stmt.prim, *args, **stmt.params)
            touts = rule(stmt, args, targs)[1]
        else:
            outs = (bind_multi(stmt.prim, *args, **stmt.params) if stmt.prim in _MULTI
                    else (bind(stmt.prim, *args, **stmt.params),))
            touts = _jvp(stmt, args, targs, list(outs))
        env.update(zip(stmt.outs, outs))
        for v, t in zip(stmt.outs, touts):
            if t is not None and v.dtype.kind in "fc":
                tangents[v] = _fit(t, v)


_MULTI = frozenset({Prim.while_loop, Prim.scan, Prim.cond, Prim.call})


def _constant(stmt) -> bool:
    """Piecewise constant or boolean-valued: no tangent leaves it."""
    if stmt.prim in ad.NONDIFFERENTIABLE:
        return True
    return stmt.prim in ad.OPS and not stmt.params["op"].differentiable


def _dtype(value):
    return value.dtype if isinstance(value, Tracer) else onp.result_type(value)


def _shape(value):
    return tuple(value.shape) if isinstance(value, Tracer) else onp.shape(value)


def _fit(t, v):
    """Tangent `t` as a value of `v`'s shape and dtype (a real value's tangent is real)."""
    if v.dtype.kind != "c" and _dtype(t).kind == "c":
        t = np.real(t)
    if _shape(t) != tuple(v.shape):
        t = np.broadcast_to(t, v.shape)
    if _dtype(t) != v.dtype:
        t = np.asarray(t).astype(v.dtype) if not isinstance(t, Tracer) else t.astype(v.dtype)
    return t


def _sum(terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _jvp(stmt, args, targs, outs) -> list:
    prim, params = stmt.prim, stmt.params
    if prim in _LINEAR:
        return [bind(prim, targs[0], **params)]
    if prim is Prim.add_into:
        base, u = targs
        if u is None:
            return [base]
        base = _zeros(stmt.inputs[0]) if base is None else base
        return [bind(Prim.add_into, base, u, **params)]
    if prim is Prim.matmul:
        a, b = args
        ta, tb = targs
        return [_sum([None if ta is None else bind(Prim.matmul, ta, b),
                      None if tb is None else bind(Prim.matmul, a, tb)])]
    if prim in (Prim.reduce_max, Prim.reduce_min):
        (x,), (t,) = args, targs
        axes, keepdims = params["axes"], params["keepdims"]
        ans = ad._repeat_to_match(outs[0], x.shape, axes, keepdims)
        winners = x == ans
        count = np.sum(winners, axis=axes, keepdims=True)
        return [np.sum(t * winners / count, axis=axes, keepdims=keepdims)]
    if prim in _DIAGONAL:
        rules = ad.VJPS[prim]
        return [_diagonal(rules, args, targs, outs[0], stmt.outs[0], params)]
    if prim is Prim.elementwise:
        op = params["op"]
        rest = {k: v for k, v in params.items() if k != "op"}
        return [_diagonal(op.rules(len(args)), args, targs, outs[0], stmt.outs[0], rest)]
    if prim is Prim.call:
        return _call_jvp(stmt, args, targs, outs)
    raise JitgradInternalError(f"no forward-mode rule for {prim.name}")


def _diagonal(rules, args, targs, ans, out: Var, params):
    """An elementwise statement's tangent: each operand's VJP rule applied to its tangent
    broadcast to the result's shape (a diagonal Jacobian is its own transpose)."""
    terms = []
    for rule, a, t in zip(rules, args, targs):
        if t is None or rule is None:
            continue
        if _shape(t) != tuple(out.shape):
            t = np.broadcast_to(t, out.shape)
        terms.append(rule(t, ans, *args, **params))
    return _sum(terms)


def _call_jvp(stmt, args, targs, outs) -> list:
    """A `call` op's tangents: each operand's VJP rule transposed (summed over operands)."""
    op = stmt.params["op"]
    params = {k: v for k, v in stmt.params.items() if k != "op"}
    ans = outs[0] if len(outs) == 1 else tuple(outs)
    out_types = [(tuple(v.shape), v.dtype) for v in stmt.outs]
    totals: list = [None] * len(outs)
    forward = op.jvp + (None,) * (len(args) - len(op.jvp))
    for i, (rule, a, t) in enumerate(zip(op.rules(len(args)), args, targs)):
        if t is None:
            continue
        if forward[i] is not None and len(outs) == 1:  # the op's own forward rule
            tk = forward[i](t, ans, *args, **params)
            if tk is not NotImplemented:
                if tk is not None:
                    totals[0] = tk if totals[0] is None else totals[0] + tk
                continue
        if rule is None:
            continue
        operand = stmt.inputs[i]

        def cotangent(*gs, rule=rule, operand=operand):
            g = gs[0] if len(gs) == 1 else tuple(gs)
            c = ad.unbroadcast(rule(g, ans, *args, **params), operand.shape)
            if operand.dtype.kind != "c" and _dtype(c).kind == "c":
                c = np.real(c)
            return [c]

        try:
            transposed = _transposed(cotangent, out_types, (tuple(operand.shape),
                                                            operand.dtype), t)
        except TracingError as e:
            raise TracingError(
                f"forward mode through {op.name}: it has no forward rule for operand {i} (a "
                f"custom primitive gets one from defjvp), and its VJP, which forward mode "
                f"transposes instead, cannot be differentiated: {e}") from None
        for k, tk in enumerate(transposed):
            if stmt.outs[k].dtype.kind in "fc":
                totals[k] = tk if totals[k] is None else totals[k] + tk
    return totals


def _transposed(linear, in_types, out_type, t) -> list:
    """`linear`'s transpose applied to `t`: the VJP, at zero, of the linear map `linear`
    (traced as a region over inputs of `in_types`, with one result of `out_type`), seeded
    with t.  Returns one value per input."""
    from .control import trace_region

    graph, captured, _ = trace_region(linear, in_types, "transpose", [out_type],
                                      lambda j: "a VJP rule's result")
    region = Graph(graph.consts + graph.inputs, (), graph.stmts, graph.outputs, graph.name)
    n = len(captured)
    vjp, consts = ad.vjp_region(region, tuple(range(n, n + len(in_types))), (0,))
    zeros = [full(s, 0.0, d) for s, d in in_types]
    return evaluate(dce(vjp), list(captured) + zeros + [t], consts)


# ------------------------------------------------------------------------------------------------
# Loops and branches
# ------------------------------------------------------------------------------------------------

def _carried_activity(body: Graph, n_fixed: int, fixed_active, carried_active, n_out=None):
    """Which carried values of a loop have tangents: those given one, and those the body
    computes from an active value (a fixpoint, since the body feeds itself).  The body's
    inputs are n_fixed values (constants, rows) then the carried ones."""
    carried = body.inputs[n_fixed:]
    act = [a and v.dtype.kind in "fc" for a, v in zip(carried_active, carried)]
    while True:
        start = {v for v, a in zip(body.inputs[:n_fixed], fixed_active) if a}
        start |= {v for v, a in zip(carried, act) if a}
        live = ad.dependents(body, start)
        new = [a or (isinstance(o, Var) and o in live and o.dtype.kind in "fc")
               for a, o in zip(act, body.outputs[:len(carried)])]
        if new == act:
            return act, live
        act = new


def _present(ts):
    return [t for t in ts if t is not None]


def _while_jvp(stmt, args, targs):
    from .control import emit_while

    p = stmt.params
    if p.get("save"):
        raise TracingError("forward mode through a loop that a reverse pass saves (a JVP of a "
                           "gradient with a compiled loop) is not supported yet; use "
                           "reverse over reverse (grad of grad, hessian)")
    cond, body = p["cond"], p["body"]
    nc, nb, k = len(cond.consts), len(body.consts), len(body.inputs)
    cond_consts, consts, init = args[:nc], args[nc:nc + nb], args[nc + nb:]
    t_consts, t_init = targs[nc:nc + nb], targs[nc + nb:]
    region = Graph(body.consts + body.inputs, (), body.stmts, body.outputs, "body")
    fixed = [t is not None for t in t_consts]
    act, _ = _carried_activity(region, nb, fixed, [t is not None for t in t_init])
    jr, jr_consts = jvp_region(region, fixed + act, act)
    tc = _present(t_consts)
    n_act = sum(act)

    def cond_fn(*v):
        return evaluate(cond, list(v[:k]), list(cond_consts))[0]

    def body_fn(*v):
        return evaluate(jr, list(consts) + list(v[:k]) + tc + list(v[k:]), jr_consts)

    t0 = [t_init[j] if t_init[j] is not None else _zeros(body.inputs[j])
          for j in range(k) if act[j]]
    outs = emit_while(cond_fn, body_fn, list(init) + t0, p.get("where", "<unknown>"),
                      max_iterations=p.get("max_iterations"))
    touts = iter(outs[k:k + n_act])
    return outs[:k], [next(touts) if a else None for a in act]


def _scan_jvp(stmt, args, targs):
    from .control import emit_scan

    p, body = stmt.params, stmt.params["body"]
    nc, nx = p["n_consts"], p["n_xs"]
    n_init = len(args) - nc - nx - 1
    consts, xs, length, init = (args[:nc], args[nc:nc + nx], args[nc + nx],
                                args[nc + nx + 1:])
    t_consts, t_xs, t_init = targs[:nc], targs[nc:nc + nx], targs[nc + nx + 1:]
    fixed = [t is not None for t in list(t_consts) + list(t_xs)]
    act, live = _carried_activity(body, nc + nx, fixed, [t is not None for t in t_init])
    ys = body.outputs[n_init:]
    y_act = [isinstance(y, Var) and y in live and y.dtype.kind in "fc" for y in ys]
    jr, jr_consts = jvp_region(body, fixed + act, act + y_act)
    tc, txs = _present(t_consts), _present(t_xs)
    n_act = sum(act)

    def step(*v):
        x_rows, tx_rows = v[:nx], v[nx:nx + len(txs)]
        carried, t_carried = v[nx + len(txs):nx + len(txs) + n_init], v[nx + len(txs) + n_init:]
        out = evaluate(jr, list(consts) + list(x_rows) + list(carried) + tc + list(tx_rows)
                       + list(t_carried), jr_consts)
        n_y = len(ys)
        # jr's outputs: carried, ys, then the tangents of the active carried and ys
        return (list(out[:n_init]) + list(out[n_init + n_y:n_init + n_y + n_act])
                + list(out[n_init:n_init + n_y]) + list(out[n_init + n_y + n_act:]))

    t0 = [t_init[j] if t_init[j] is not None else _zeros(body.inputs[nc + nx + j])
          for j in range(n_init) if act[j]]
    ys_types = [(tuple(y.shape), y.dtype) for y in ys]
    ys_types += [t for t, a in zip(ys_types, y_act) if a]
    carried, stacked = emit_scan(step, list(xs) + txs, length, list(init) + t0, ys_types,
                                 reverse=p["reverse"], name=body.name + "_jvp")
    t_carried, t_ys = iter(carried[n_init:]), iter(stacked[len(ys):])
    return (carried[:n_init] + stacked[:len(ys)],
            [next(t_carried) if a else None for a in act]
            + [next(t_ys) if a else None for a in y_act])


def _cond_jvp(stmt, args, targs):
    from .control import emit_cond

    true, false = stmt.params["true"], stmt.params["false"]
    operands, t_ops = args[1:], targs[1:]
    active = [t is not None for t in t_ops]
    outs_float = [o.dtype.kind in "fc" for o in true.outputs]
    t_graph, t_consts = jvp_region(true, active, outs_float)
    f_graph, f_consts = jvp_region(false, active, outs_float)
    n = len(true.outputs)

    def branch(graph, consts):
        return lambda *v: evaluate(graph, list(v), consts)

    outs = emit_cond(args[0], branch(t_graph, t_consts), branch(f_graph, f_consts),
                     list(operands) + _present(t_ops), "a branch's tangent")
    touts = iter(outs[n:])
    return outs[:n], [next(touts) if f else None for f in outs_float]


CONTROL_JVPS = {Prim.while_loop: _while_jvp, Prim.scan: _scan_jvp, Prim.cond: _cond_jvp}
