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
