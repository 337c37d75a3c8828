"""The intermediate representation: a flat list of SSA statements.

A `Graph` is what tracing produces, what the reverse-mode transform reads and writes, and what code
generation consumes.  Every variable is bound once and carries its shape and dtype.  Statements are
`(prim, inputs, outs, params)`; a statement that will hold nested regions (loops, branches) keeps
its sub-graphs in `params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import JitgradInternalError

DTYPE_SHORT = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32", "bool": "bool",
               "complex128": "c128", "complex64": "c64"}


@dataclass(frozen=True, slots=True, eq=False)
class Var:
    """A value bound exactly once. Identity is the variable; `id` only names it."""

    id: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def name(self) -> str:
        return f"x{self.id}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def type_str(self) -> str:
        dims = ",".join("?" if n < 0 else str(n) for n in self.shape)  # ? = a tape's length
        return f"{DTYPE_SHORT.get(self.dtype.name, self.dtype.name)}[{dims}]"

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Lit:
    """A scalar constant written into the code (Python scalars of the traced function)."""

    value: float | int | bool
    dtype: np.dtype

    shape = ()
    ndim = 0

    def __repr__(self) -> str:
        return repr(self.value)


Atom = Var | Lit


@dataclass(frozen=True, slots=True, eq=False)
class Stmt:
    prim: "object"  # a primitives.Prim
    inputs: tuple[Atom, ...]
    outs: tuple[Var, ...]
    params: dict = field(default_factory=dict)

    @property
    def out(self) -> Var:
        return self.outs[0]


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    """A traced function: `inputs` are the argument leaves, `consts` the arrays it captured from
    its enclosing scope (passed to the kernel at every call), `outputs` what it returns."""

    inputs: tuple[Var, ...]
    consts: tuple[Var, ...]
    stmts: tuple[Stmt, ...]
    outputs: tuple[Atom, ...]
    name: str = "f"

    def __str__(self) -> str:
        return format_graph(self)


# ------------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------------


def _format_param(value, span=str) -> str:
    if isinstance(value, Graph):
        return f"{{{value.name}}}"  # printed in full below the statement
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple) and any(isinstance(v, Span) for v in value):
        return "[" + ", ".join(span(v) if isinstance(v, Span) else str(v) for v in value) + "]"
    return repr(value)


class Span(tuple):
    """One sliced dimension of a basic index: `count` elements from `start` in steps of `step`.
    (Normalised this way because `slice(n-1, -1, -1)` would not mean what it says.)"""

    __slots__ = ()

    def __new__(cls, start: int, step: int, count: int):
        return tuple.__new__(cls, (start, step, count))

    start = property(lambda self: self[0])
    step = property(lambda self: self[1])
    count = property(lambda self: self[2])

    def to_slice(self) -> slice:
        stop = self.start + self.step * self.count
        return slice(self.start, None if stop < 0 else stop, self.step)

    def __repr__(self) -> str:
        # The stop just past the last element (`0:7:2`, not `0:8:2`, for 4 of 7 elements): it is
        # a size of the array more often (a kernel's comments then name it, codegen.Lifted).
        last = self.start + self.step * (self.count - 1)
        stop = last + (1 if self.step > 0 else -1) if self.count else self.start
        text = f"{self.start}:{stop if stop >= 0 else ''}"
        return text + (f":{self.step}" if self.step != 1 else "")

    __str__ = __repr__


def format_stmt(stmt: Stmt, span=str) -> str:
    """One statement as text; `span` formats a slice's `Span`s (codegen names their starts)."""
    outs = ", ".join(f"{v.name}:{v.type_str()}" for v in stmt.outs)
    params, name = stmt.params, stmt.prim.name
    if "op" in params:  # an op of a family (ops.py) prints as itself
        params, name = {k: v for k, v in params.items() if k != "op"}, repr(params["op"])
    text = ""
    if params:
        text = "[" + ", ".join(f"{k}={_format_param(v, span)}" for k, v in params.items()) + "]"
    args = " ".join(repr(a) for a in stmt.inputs)
    return f"{outs} = {name}{text} {args}".rstrip()


def format_graph(graph: Graph, indent: str = "", span=str) -> str:
    ins = ", ".join(f"{v.name}:{v.type_str()}" for v in graph.inputs)
    lines = [f"{indent}def {graph.name}({ins}):"]
    if graph.consts:
        consts = ", ".join(f"{v.name}:{v.type_str()}" for v in graph.consts)
        lines.append(f"{indent}  consts {consts}")
    for stmt in graph.stmts:
        lines.append(f"{indent}  {format_stmt(stmt, span)}")
        for value in stmt.params.values():
            if isinstance(value, Graph):  # regions (loop bodies, branches), nested in place
                lines.append(format_graph(value, indent + "    ", span))
    lines.append(f"{indent}  return " + ", ".join(repr(a) for a in graph.outputs))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Verification
# ------------------------------------------------------------------------------------------------


def verify(graph: Graph) -> Graph:
    """Check that every variable is defined before use and bound once, and that every statement's
    output agrees with its primitive's shape rule.  Returns the graph so passes can chain it."""
    from .primitives import infer

    defined: set[int] = set()

    def bind(var: Var, stmt=None) -> None:
        if isinstance(var, Var) and var.id not in defined:
            defined.add(var.id)
            return
        where = f"`{format_stmt(stmt)}`" if stmt is not None else "graph inputs"
        if not isinstance(var, Var):
            raise JitgradInternalError(f"{where}: {var!r} is not a variable")
        raise JitgradInternalError(f"{where}: {var.name} is bound twice")

    for v in graph.inputs + graph.consts:
        bind(v)
    for stmt in graph.stmts:
        for a in stmt.inputs:
            if isinstance(a, Var) and a.id not in defined:
                raise JitgradInternalError(
                    f"`{format_stmt(stmt)}`: {a.name} is used before it is defined")
        expected = infer(stmt.prim, stmt.inputs, stmt.params)
        got = [(v.shape, v.dtype) for v in stmt.outs]
        if got != expected:
            raise JitgradInternalError(
                f"`{format_stmt(stmt)}`: shape rule gives {expected}, statement has {got}")
        for v in stmt.outs:
            bind(v, stmt)
        for value in stmt.params.values():
            if isinstance(value, Graph):
                verify(value)
    for a in graph.outputs:
        if isinstance(a, Var) and a.id not in defined:
            raise JitgradInternalError(f"output {a.name} is never defined")
    return graph
