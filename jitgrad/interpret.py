"""The reference interpreter: evaluate a graph statement by statement.

On NumPy arrays it is the oracle the compiled kernels are tested against.  On tracers it inlines
the graph into the enclosing trace (that is how `grad` of a `grad` works).
"""

from __future__ import annotations

import time

from .ir import Graph, Lit
from .primitives import MULTI
from .trace import bind, bind_multi


def evaluate(graph: Graph, inputs, consts, frees=None, timed=(), clock=None) -> list:
    """The graph's outputs.  `frees` (from `last_uses`): drop each value after the statement
    that reads it last, so that a long gradient holds only what its backward pass still needs
    (without it, every intermediate lives to the end).  `timed`: the indices of statements
    whose seconds are added to `clock[0]`."""
    env = dict(zip(graph.inputs, inputs))
    env.update(zip(graph.consts, consts))

    def read(a):
        return a.value if isinstance(a, Lit) else env[a]

    for i, stmt in enumerate(graph.stmts):
        start = time.perf_counter() if i in timed else None
        if stmt.prim in MULTI:
            env.update(zip(stmt.outs, bind_multi(stmt.prim, *map(read, stmt.inputs),
                                                 **stmt.params)))
        else:
            env[stmt.out] = bind(stmt.prim, *map(read, stmt.inputs), **stmt.params)
        if start is not None:
            clock[0] += time.perf_counter() - start
        if frees is not None:
            for v in frees[i]:
                del env[v]
    return [read(a) for a in graph.outputs]


def last_uses(graph: Graph) -> list:
    """For each statement, the values computed by statements that nothing reads after it (and
    that are not outputs): what `evaluate` may drop once it has run."""
    last = {}
    for i, stmt in enumerate(graph.stmts):
        for out in stmt.outs:
            last[out] = i
        for a in stmt.inputs:
            if not isinstance(a, Lit) and a in last:
                last[a] = i
    for a in graph.outputs:
        if not isinstance(a, Lit):
            last.pop(a, None)
    frees = [[] for _ in graph.stmts]
    for v, i in last.items():
        frees[i].append(v)
    return frees


class Staged:
    """A graph evaluated in two stages: `Staged(graph, known, consts)` evaluates now the
    statements that need only the first len(known) inputs and the constants; calling it with
    the remaining inputs evaluates the rest and returns the outputs.  On tracers, the first
    stage is recorded once in the enclosing trace and every call records only the second:
    a vjp called once per row of a Jacobian, inside a loop, does not repeat the forward pass."""

    def __init__(self, graph: Graph, known, consts):
        self.graph, self.n_known = graph, len(known)
        self.env = dict(zip(graph.inputs, known))
        self.env.update(zip(graph.consts, consts))
        self.later = []
        for stmt in graph.stmts:
            if all(isinstance(a, Lit) or a in self.env for a in stmt.inputs):
                self._run(stmt, self.env)
            else:
                self.later.append(stmt)

    @staticmethod
    def _run(stmt, env) -> None:
        args = [a.value if isinstance(a, Lit) else env[a] for a in stmt.inputs]
        if stmt.prim in MULTI:
            env.update(zip(stmt.outs, bind_multi(stmt.prim, *args, **stmt.params)))
        else:
            env[stmt.out] = bind(stmt.prim, *args, **stmt.params)

    def known_outputs(self, n: int) -> list:
        """The first n outputs, which the first stage computed."""
        return [a.value if isinstance(a, Lit) else self.env[a] for a in self.graph.outputs[:n]]

    def __call__(self, rest) -> list:
        env = dict(self.env)
        env.update(zip(self.graph.inputs[self.n_known:], rest))
        for stmt in self.later:
            self._run(stmt, env)
        return [a.value if isinstance(a, Lit) else env[a] for a in self.graph.outputs]
