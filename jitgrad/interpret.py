"""The reference interpreter: evaluate a graph statement by statement.

On NumPy arrays it is the oracle the compiled kernels are tested against.  On tracers it inlines
the graph into the enclosing trace (that is how `grad` of a `grad` works).
"""

from __future__ import annotations

from .ir import Graph, Lit
from .primitives import MULTI
from .trace import bind, bind_multi


def evaluate(graph: Graph, inputs, consts) -> list:
    env = dict(zip(graph.inputs, inputs))
    env.update(zip(graph.consts, consts))

    def read(a):
        return a.value if isinstance(a, Lit) else env[a]

    for stmt in graph.stmts:
        if stmt.prim in MULTI:
            env.update(zip(stmt.outs, bind_multi(stmt.prim, *map(read, stmt.inputs),
                                                 **stmt.params)))
        else:
            env[stmt.out] = bind(stmt.prim, *map(read, stmt.inputs), **stmt.params)
    return [read(a) for a in graph.outputs]


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
