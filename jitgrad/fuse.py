"""Fusion: decide which values exist as arrays and group the work into loop nests.

Elementwise statements and the views between them (broadcasts, slices, transposes, unit-dim
reshapes) are never materialised unless they must be: a loop nest computes them per element,
reading through views by index arithmetic.  Work enters a loop nest as a *sink*:

  - `store`:   write an elementwise value that must exist as an array (a kernel output, a matrix
               product's operand, ...);
  - `reduce`:  a sum/max/min over the nest's iteration space;
  - `scatter`: `add_into`, the adjoint of a slice, accumulated in place;
  - `rowdot`:  `y = X @ w` for a matrix X and a vector w, one dot product per row of X;
  - `rowaxpy`: `r = X.T @ v` for a vector v computed in the nest, `r += v[i] X[i, :]` per row.

The last two are *row products*: where a matrix is multiplied by a vector and its transpose by
another vector computed from the first product row by row (a linear model's loss and its
gradient: logistic regression), both go into the nest over X's rows, so X is read once per
call instead of twice (two BLAS passes), each row from L1 for the second product.

Sinks over the same iteration space share one nest when none reads what another writes, so a
forward reduction and the backward pass that follows it (Rosenbrock: the loss, and both slices'
contributions to the gradient) become a single loop.  Everything else (matrix products, general
reshapes, allocations) is a `call` step between nests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .ir import Graph, Lit, Stmt, Var
from .primitives import ELEMENTWISE, REDUCE, Prim

FLOAT64 = np.dtype(np.float64)


@dataclass
class Sink:
    kind: str  # "store" | "reduce" | "scatter"
    stmt: Stmt | None  # the reduce or add_into statement; None for a store
    var: Var  # the value it produces
    inplace: bool = True  # scatter: accumulate into base's buffer (else into a copy)

    @property
    def space(self) -> tuple[int, ...]:
        if self.kind == "store":
            return self.var.shape
        if self.kind == "rowdot":  # over the rows of X in X @ w
            return self.stmt.inputs[0].shape[:1]
        if self.kind == "rowaxpy":  # over the columns of X.T in X.T @ v
            return self.stmt.inputs[0].shape[1:]
        return self.stmt.inputs[0].shape if self.kind == "reduce" else self.stmt.inputs[1].shape


@dataclass
class Loop:
    space: tuple[int, ...]
    sinks: list[Sink] = field(default_factory=list)


@dataclass
class Call:
    stmt: Stmt  # work between loop nests: a matrix product, a view or reshape, an allocation...


@dataclass
class Schedule:
    graph: Graph
    steps: list  # Loop | Call, in execution order
    materialized: set  # vars that exist as arrays or scalars in the kernel
    producers: dict  # Var -> the Stmt that defines it

    def aliases_argument(self, var: Var) -> bool:
        """Might `var` share memory with a kernel argument (through views and reshapes)?"""
        arguments = set(self.graph.inputs) | set(self.graph.consts)
        while var not in arguments:
            stmt = self.producers.get(var)
            if stmt is None or stmt.prim not in (Prim.reshape, Prim.transpose, Prim.slice) \
                    or not isinstance(stmt.inputs[0], Var):
                return False
            var = stmt.inputs[0]
        return True


def is_unit_reshape(stmt: Stmt) -> bool:
    """A reshape that only inserts or removes size-1 axes: indices map one to one."""
    return stmt.prim is Prim.reshape and (
        [n for n in stmt.inputs[0].shape if n != 1] == [n for n in stmt.out.shape if n != 1])


def _vector_like(var) -> bool:
    """(n,) or (n, 1): a vector, as NumPy's dot of a matrix and a 1-D array traces it."""
    return isinstance(var, Var) and (var.ndim == 1 or (var.ndim == 2 and var.shape[1] == 1))


def row_products(graph: Graph, producers: dict) -> dict:
    """The matrix-vector products to compute row by row in loop nests, by statement:
    {stmt: "rowdot" | "rowaxpy"}.  Only pairs: `X @ w` and `X.T @ v` of one float64 matrix X
    (at least 2 rows), each vector (n,) or (n, 1), the result of `X @ w` read only element by
    element as a (rows,) vector (directly, or through a reshape dropping its unit axis).
    JITGRAD_ROW_PRODUCTS=0 leaves every product to BLAS."""
    if os.environ.get("JITGRAD_ROW_PRODUCTS", "1").strip().lower() in ("0", "false", "no"):
        return {}
    uses: dict[Var, list[Stmt]] = {}
    for stmt in graph.stmts:
        for a in stmt.inputs:
            if isinstance(a, Var):
                uses.setdefault(a, []).append(stmt)
    outputs = {a for a in graph.outputs if isinstance(a, Var)}

    def read_by_rows(y: Var) -> bool:
        """Is every reader of `y` elementwise on (rows,) vectors (or a reshape to one)?"""
        readers = uses.get(y, [])
        return bool(readers) and y not in outputs and all(
            is_unit_reshape(r) and r.out.ndim == 1 if r.prim not in ELEMENTWISE else
            y.ndim == 1 and all(i.shape == y.shape for i in r.inputs if isinstance(i, Var))
            for r in readers)

    dots: dict[Var, list[Stmt]] = {}  # X -> its products X @ w
    axpys: dict[Var, list[Stmt]] = {}  # X -> its products X.T @ v
    for stmt in graph.stmts:
        if stmt.prim is not Prim.matmul:
            continue
        a, b = stmt.inputs
        if not (isinstance(a, Var) and a.ndim == 2 and _vector_like(b) and _vector_like(stmt.out)
                and a.dtype == b.dtype == stmt.out.dtype == FLOAT64):
            continue
        t = producers.get(a)
        if t is not None and t.prim is Prim.transpose and isinstance(t.inputs[0], Var):
            axpys.setdefault(t.inputs[0], []).append(stmt)
        elif read_by_rows(stmt.out):
            dots.setdefault(a, []).append(stmt)
    found = {}
    for x in dots.keys() & axpys.keys():
        if x.shape[0] >= 2:
            found.update((s, "rowdot") for s in dots[x])
            found.update((s, "rowaxpy") for s in axpys[x])
    return found


def fusible(stmt: Stmt) -> bool:
    """Can a loop body compute this statement's value for one element from its operands'?"""
    if stmt.prim in ELEMENTWISE or stmt.prim in (Prim.broadcast_to, Prim.slice, Prim.transpose):
        return True
    return is_unit_reshape(stmt)


def dce(graph: Graph) -> Graph:
    """Drop statements whose results nothing uses."""
    live = {a for a in graph.outputs if isinstance(a, Var)}
    kept = []
    for stmt in reversed(graph.stmts):
        if any(v in live for v in stmt.outs):
            kept.append(stmt)
            live.update(a for a in stmt.inputs if isinstance(a, Var))
    return Graph(graph.inputs, graph.consts, tuple(reversed(kept)), graph.outputs, graph.name)


def schedule(graph: Graph) -> Schedule:
    producers = {v: s for s in graph.stmts for v in s.outs}
    uses: dict[Var, int] = {}
    for stmt in graph.stmts:
        for a in stmt.inputs:
            if isinstance(a, Var):
                uses[a] = uses.get(a, 0) + 1
    for a in graph.outputs:
        if isinstance(a, Var):
            uses[a] = uses.get(a, 0) + 1

    materialized = set(graph.inputs) | set(graph.consts)
    # Values that must exist as arrays: what the kernel returns, and what non-loop work reads
    # (a matrix product may read a transpose or slice of an array as a view, without a copy).
    needed = {a for a in graph.outputs if isinstance(a, Var)}
    view_candidates = set()
    rows = row_products(graph, producers)
    for stmt in graph.stmts:
        if fusible(stmt):
            continue
        materialized.update(stmt.outs)
        if stmt.prim in REDUCE:
            continue  # reads its operand element by element
        operands = [a for a in stmt.inputs if isinstance(a, Var)]
        if rows.get(stmt) == "rowdot":
            needed.update(operands)  # X and w, read as arrays in the nest
            continue
        if rows.get(stmt) == "rowaxpy":  # X (under the transpose) as an array, v per element
            needed.add(producers[stmt.inputs[0]].inputs[0])
            continue
        if stmt.prim is Prim.add_into:
            operands = operands[:1]  # the update is also read element by element
        for a in operands:
            producer = producers.get(a)
            if (stmt.prim is Prim.matmul and producer is not None
                    and producer.prim in (Prim.transpose, Prim.slice)):
                view_candidates.add(a)
            else:
                needed.add(a)
    # A costly value read broadcast over a space at least BROADCAST_STORE times its size would be
    # recomputed at every element it is broadcast to (exp(q) of a (K, d) parameter against
    # (n, K, d) data: n times each; a log-sum-exp's weight, exp and division, against the d
    # coordinates of each point): it is stored once instead.  Costly: computed element by
    # element with a costly statement somewhere in the tree below it.
    costly_vars: set[Var] = set()
    for stmt in graph.stmts:
        if not fusible(stmt):
            continue
        if costly(stmt) or any(a in costly_vars for a in stmt.inputs if isinstance(a, Var)):
            costly_vars.add(stmt.out)
        if stmt.prim not in ELEMENTWISE and stmt.prim is not Prim.broadcast_to:
            continue
        size = math.prod(stmt.outs[0].shape)
        for a in stmt.inputs:
            if isinstance(a, Var) and a in costly_vars \
                    and math.prod(a.shape) * BROADCAST_STORE <= size:
                needed.add(a)
    # A value needed in memory that is a unit-dim reshape (a vector made a column for a matrix
    # product, a column made a vector for the gradient) is a reshape of its stored source: the
    # source keeps the shape of the elementwise work around it, and so fuses with it.
    reshaped: set[Var] = set()
    changed = True
    while changed:
        changed = False
        for v in list(needed - reshaped):
            stmt = producers.get(v)
            if stmt is not None and is_unit_reshape(stmt) and isinstance(stmt.inputs[0], Var):
                reshaped.add(v)
                needed.add(stmt.inputs[0])
                changed = True
    materialized |= needed
    views = {v for v in view_candidates - needed
             if isinstance(producers[v].inputs[0], Var) and producers[v].inputs[0] in materialized}
    needed |= view_candidates - views
    materialized |= needed | views

    seen: dict[Var, frozenset] = {}

    def deps(root: Var) -> frozenset:
        """The materialised values that computing `root` element by element reads.
        (Iterative: an unrolled loop makes elementwise chains thousands of statements deep.)"""
        if root in materialized:
            return frozenset([root])
        stack = [root]
        while stack:
            var = stack[-1]
            operands = [a for a in producers[var].inputs if isinstance(a, Var)]
            pending = [a for a in operands if a not in materialized and a not in seen]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            seen[var] = frozenset().union(
                *(frozenset([a]) if a in materialized else seen[a] for a in operands))
        return seen[root]

    steps: list = []
    allocations: list[Call] = []
    made_at: dict[Var, int] = {v: -1 for v in list(graph.inputs) + list(graph.consts)}

    for stmt in graph.stmts:
        out = stmt.out
        if fusible(stmt) and out not in needed and out not in views:
            continue  # computed inside the loops that read it
        if out in views or out in reshaped:
            steps.append(Call(stmt))  # a transpose or slice, emitted as a NumPy view
            made_at[out] = len(steps) - 1
            continue
        if fusible(stmt):
            sink = Sink("store", None, out)
            reads = frozenset().union(*(deps(a) for a in stmt.inputs if isinstance(a, Var)))
        elif stmt.prim in REDUCE:
            sink, reads = Sink("reduce", stmt, out), deps(stmt.inputs[0])
        elif stmt.prim is Prim.add_into:
            base, update = stmt.inputs
            # Accumulate into base's own buffer when nothing else reads base and the buffer is
            # the kernel's own (not an argument, and not a view or reshape of another array).
            inplace = (uses.get(base, 0) == 1 and base in producers and base not in views
                       and not (producers[base].prim is Prim.reshape
                                and not fusible(producers[base])))
            sink = Sink("scatter", stmt, out, inplace)
            reads = deps(update) if isinstance(update, Var) else frozenset()
        elif stmt in rows:
            sink = Sink(rows[stmt], stmt, out)
            if sink.kind == "rowdot":
                reads = frozenset(a for a in stmt.inputs if isinstance(a, Var))
            else:
                t, v = stmt.inputs
                reads = deps(v) | {producers[t].inputs[0]}
        elif stmt.prim is Prim.full:
            allocations.append(Call(stmt))  # reads nothing: allocate up front, block no fusion
            made_at[out] = -1
            continue
        else:
            steps.append(Call(stmt))
            made_at.update((v, len(steps) - 1) for v in stmt.outs)
            continue
        roots = [stmt.inputs[1]] if sink.kind in ("scatter", "rowaxpy") else (
            [stmt.inputs[0]] if sink.kind == "reduce" else
            [] if sink.kind == "rowdot" else list(stmt.inputs))
        same_element = _same_element_reads(roots, sink.space, materialized, producers,
                                           loose=sink.kind == "rowaxpy")
        earliest = 0
        for d in reads:
            # A value stored by a nest over the same space can be read in that nest, as the
            # local it was stored from, if it is read at the very element being computed.
            j = made_at[d]
            shared = (d in same_element and j >= 0 and isinstance(steps[j], Loop)
                      and steps[j].space == sink.space
                      and any(k.kind in ("store", "rowdot") and k.var is d
                              for k in steps[j].sinks))
            earliest = max(earliest, j if shared else j + 1)
        if sink.kind == "scatter":
            base = stmt.inputs[0]
            chained = sink.inplace and producers[base].prim is Prim.add_into
            earliest = max(earliest, made_at[base] + (0 if chained else 1))
        target = None
        for j in range(len(steps) - 1, earliest - 1, -1):
            step = steps[j]
            if isinstance(step, Loop) and step.space == sink.space:
                target = j
                break
        if target is None:
            steps.append(Loop(sink.space))
            target = len(steps) - 1
        steps[target].sinks.append(sink)
        made_at[out] = target
    return Schedule(graph, allocations + steps, materialized, producers)


BROADCAST_STORE = 8
# Elementwise statements that cost more to recompute than to load (transcendental functions,
# divisions, powers, an op's scalar function).
COSTLY = {Prim.exp, Prim.log, Prim.log1p, Prim.expm1, Prim.sqrt, Prim.sin, Prim.cos, Prim.tan,
          Prim.tanh, Prim.sinh, Prim.cosh, Prim.arcsin, Prim.arccos, Prim.arctan, Prim.div,
          Prim.pow, Prim.elementwise}


def costly(stmt: Stmt) -> bool:
    """Does computing the statement's element cost more than loading it?  (A square or a cube
    is written as products.)"""
    if stmt.prim is Prim.pow and isinstance(stmt.inputs[1], Lit) and stmt.inputs[1].value in (2, 3):
        return False
    return stmt.prim in COSTLY


def _same_element_reads(roots, space, materialized, producers, loose=False) -> set:
    """The materialised values that the elementwise trees under `roots` read only at the
    element the loop is computing (no broadcast, slice or transpose on the way).  `loose`: a
    root may differ from the space by unit axes (a row product's (n, 1) vector)."""
    verdict: dict[Var, bool] = {}
    stack = [(r, r.shape == space or loose and _unit_equal(r.shape, space))
             for r in roots if isinstance(r, Var)]
    seen = set()
    while stack:
        var, same = stack.pop()
        if (var, same) in seen:
            continue
        seen.add((var, same))
        if var in materialized:
            verdict[var] = verdict.get(var, True) and same
            continue
        stmt = producers[var]
        elementwise = stmt.prim in ELEMENTWISE
        for a in stmt.inputs:
            if isinstance(a, Var):
                # A unit-dim reshape maps an element to one element, spelt alike (codegen).
                stack.append((a, same and (elementwise and a.shape == var.shape
                                           or is_unit_reshape(stmt))))
    return {v for v, ok in verdict.items() if ok}


def _unit_equal(a: tuple, b: tuple) -> bool:
    """The same shape, or the same but for unit axes (a row product's (n, 1) vector read in a
    nest over (n,))."""
    return a == b or [n for n in a if n != 1] == [n for n in b if n != 1]
