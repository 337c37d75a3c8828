"""Pictures of the computation: the traced IR as a graph of values (nodes) and the operations
that make them (edges), with each value's adjoint from the reverse pass.

`jitgrad.explain(f, *args).graph()` returns a `graphviz.Digraph` when the `graphviz` package is
installed (`pip install "jitgrad[graph]"`; rendering to SVG/PNG also needs Graphviz's `dot`),
else a `Dot`, the same graph as DOT text (`print` it, or paste it into any Graphviz viewer).
For values of one element the nodes show the number and its adjoint: `sin(x y) + cos(x y)` at
(x, y) draws the forward values and, backwards, d(out)/d(node) on every node.
"""

from __future__ import annotations

import numpy as np

from .interpret import Staged
from .ir import Graph, Lit, Var


class Dot(str):
    """A graph as DOT text (what `graph()` returns without the graphviz package)."""

    @property
    def source(self) -> str:  # as graphviz.Digraph has
        return str(self)


def _number(value) -> str:
    value = np.asarray(value)
    if value.size != 1:
        return ""
    x = value.reshape(())[()]
    return f"{complex(x):.4g}" if np.iscomplexobj(x) else f"{float(x):.4g}"


def _type(v: Var) -> str:
    dims = ",".join(str(n) for n in v.shape)
    return f"{v.dtype.name}[{dims}]"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(graph: Graph, values: dict, adjoints: dict, title: str) -> str:
    """DOT text of `graph`: a node per input, constant and statement result (its name, type,
    and for one element its value and adjoint), an edge per operand read."""
    lines = [f'digraph "{_escape(title)}" {{', "  rankdir=LR;",
             '  node [shape=box, fontname="monospace", fontsize=10];']

    def node(v: Var, what: str, shape="box") -> None:
        label = [f"{v} = {what}", _type(v)]
        number = _number(values[v]) if v in values else ""
        if number:
            label.append(f"value {number}")
        if v in adjoints and _number(adjoints[v]):
            label.append(f"adjoint {_number(adjoints[v])}")
        text = _escape("\\n".join(label)).replace("\\\\n", "\\n")
        lines.append(f'  {v} [label="{text}", shape={shape}];')

    for i, v in enumerate(graph.inputs):
        node(v, f"input {i}", "ellipse")
    for v in graph.consts:
        node(v, "constant", "note")
    for stmt in graph.stmts:
        name = repr(stmt.params["op"]) if "op" in stmt.params else stmt.prim.name
        literals = [repr(a.value) for a in stmt.inputs if isinstance(a, Lit)]
        what = name + (f"(…, {', '.join(literals)})" if literals else "")
        for out in stmt.outs:
            node(out, what)
            for a in stmt.inputs:
                if isinstance(a, Var):
                    lines.append(f"  {a} -> {out};")
    for j, y in enumerate(graph.outputs):
        if isinstance(y, Var):
            lines.append(f'  out{j} [label="output {j}", shape=plaintext];')
            lines.append(f"  {y} -> out{j};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def picture(graph: Graph, consts, dynamic, wrt, adjoints: bool, title: str):
    """The graph of `graph` evaluated at `dynamic` (its inputs) with the interpreter: a
    graphviz.Digraph, or its DOT text."""
    from . import ad

    values = Staged(graph, list(dynamic), list(consts)).env
    found: dict = {}
    if adjoints and graph.outputs and graph.outputs[0].shape == () and wrt:
        grad_graph, grad_consts, recorded = ad.value_grad_and_adjoints_graph(graph, consts, wrt)
        from .interpret import evaluate

        out = evaluate(grad_graph, list(dynamic), grad_consts)
        found = dict(zip(recorded, out[len(out) - len(recorded):]))
    text = dot(graph, values, found, title)
    try:
        import graphviz
    except ImportError:
        return Dot(text)
    return graphviz.Source(text)
