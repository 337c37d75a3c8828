"""Code generation: a schedule becomes the Python source of one Numba kernel.

Each loop nest computes, per element, the values its sinks need: one local per (value, index)
pair, so a value that both the forward and the backward pass read is computed once per element.
Views (broadcasts, slices, transposes, unit-dim reshapes) become index arithmetic.  A value that
depends only on the outer loop indices is computed in the outer loop.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import re
import sys

import numpy as np

from .errors import JitgradInternalError
from .fuse import Call, Loop, Schedule, Sink, costly, is_unit_reshape
from .ir import Lit, Span, Var, format_graph, format_stmt
from .primitives import CONTROL, ELEMENTWISE, MULTI, Prim, numpy_index

CODE = {
    Prim.neg: "-{0}", Prim.exp: "np.exp({0})", Prim.log: "np.log({0})",
    Prim.log1p: "np.log1p({0})", Prim.expm1: "np.expm1({0})", Prim.sqrt: "np.sqrt({0})",
    Prim.sin: "np.sin({0})", Prim.cos: "np.cos({0})", Prim.tan: "np.tan({0})",
    Prim.tanh: "np.tanh({0})", Prim.sinh: "np.sinh({0})", Prim.cosh: "np.cosh({0})",
    Prim.arcsin: "np.arcsin({0})", Prim.arccos: "np.arccos({0})", Prim.arctan: "np.arctan({0})",
    Prim.abs: "abs({0})", Prim.sign: "np.sign({0})",
    Prim.add: "{0} + {1}", Prim.sub: "{0} - {1}", Prim.mul: "{0} * {1}", Prim.div: "{0} / {1}",
    Prim.maximum: "np.maximum({0}, {1})", Prim.minimum: "np.minimum({0}, {1})",
    Prim.lt: "{0} < {1}", Prim.le: "{0} <= {1}", Prim.gt: "{0} > {1}", Prim.ge: "{0} >= {1}",
    Prim.eq: "{0} == {1}", Prim.ne: "{0} != {1}",
    Prim.where: "{1} if {0} else {2}",
}


# Transcendental functions of float64 (and float32, through float64) that LLVM vectorises:
# jitgrad/vecmath.py, within 1 ulp of NumPy (sigmoid-style code is exp and a division).  Scalar
# libm calls keep a loop scalar.  JITGRAD_FAST_MATH=0 asks for libm (NumPy's own values).
VECMATH = {Prim.exp: "exp", Prim.expm1: "expm1", Prim.log: "log", Prim.log1p: "log1p",
           Prim.sin: "sin", Prim.cos: "cos", Prim.tanh: "tanh"}


VECMATH_MAX_CALLS = int(os.environ.get("JITGRAD_VECMATH_MAX_CALLS", "24"))


def vecmath_enabled() -> bool:
    return os.environ.get("JITGRAD_FAST_MATH", "1").strip().lower() not in ("0", "false", "no")


def _math_code(prim: Prim, x: str, dtype: np.dtype) -> str | None:
    """`prim(x)` through vecmath, or None where libm is used (other dtypes, or turned off)."""
    name = VECMATH.get(prim)
    if name is None or dtype.kind != "f" or dtype.itemsize not in (4, 8) or not vecmath_enabled():
        return None
    if dtype.itemsize == 8:
        return f"vecmath.{name}({x})"
    return f"np.float32(vecmath.{name}(np.float64({x})))"


# vecmath.pow is about four times exp's code: it counts so many against a kernel's budget.
POW_COST = 4


def _pow_vecmath_code(stmt, args: list[str]) -> str | None:
    """`x ** y` through vecmath.pow (within 1 ulp of NumPy, vectorised), or None where
    `_pow_code` writes it (products, sqrt, an integer power, other dtypes, vecmath off)."""
    x, y = stmt.inputs
    dtype = stmt.out.dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8) or not vecmath_enabled():
        return None
    if isinstance(y, Lit) and y.value in (2, 3, 0.5, -1):
        return None
    if any(a.dtype != dtype for a in (x, y) if isinstance(a, Var)) or y.dtype.kind != "f":
        return None
    if dtype.itemsize == 8:
        return f"vecmath.pow({args[0]}, {args[1]})"
    return f"np.float32(vecmath.pow(np.float64({args[0]}), np.float64({args[1]})))"


@functools.lru_cache(maxsize=None)
def _vecmath_fingerprint() -> str:
    from . import vecmath

    with open(vecmath.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _pow_code(x: str, y, y_code: str, dtype) -> str:
    """`x ** y` for a result of `dtype`, with NumPy's values (inf, nan) everywhere."""
    # Small literal exponents as products: exact for squares, and far faster than pow().  (The
    # square root is what NumPy computes for `** 0.5` too: nan at -inf, -0.0 at -0.0.)
    if isinstance(y, Lit):
        if y.value == 2:
            return f"{x} * {x}"
        if y.value == 3:
            return f"{x} * {x} * {x}"
        if y.value == 0.5:
            return f"np.sqrt({x})"
        if y.value == -1:
            return f"1.0 / {x}"
    if dtype.kind == "f" and y.dtype.kind in "biu":
        # Numba's float ** int raises ZeroDivisionError for 0 ** -n; NumPy's pow() gives inf.
        if not isinstance(y, Lit):
            return f"{x} ** {dtype_code(dtype)}({y_code})"
        if y.value < 0:
            return f"{x} ** {literal(float(y.value))}"
    return f"{x} ** {y_code}"


def dtype_code(dtype: np.dtype) -> str:
    return "np.bool_" if dtype.kind == "b" else f"np.{dtype.name}"


def literal(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "(-np.inf)"
    if isinstance(value, complex):
        return f"complex({literal(value.real)}, {literal(value.imag)})"
    text = repr(value)
    return f"({text})" if text.startswith("-") else text


class Lifted:
    """The numbers a kernel reads from its `lifted` argument instead of spelling them out, so
    that one kernel serves every size: sizes (the integers from 2 up that shapes and loop bounds
    are made of), the starts of slices (offsets) and float constants (`np.mean`'s 1/n, a user's
    constants).

    Names go by value, in order of first use (`N0, N1, ...`, `S0, S1, ...` and `F0, F1, ...`);
    a start is named apart from the sizes, so that a minibatch's start coinciding with a size
    changes no code.  So the text
    with the names, plus the values, is exactly the text with the numbers spelled out: two traces
    that give the same text compute the same thing with their own numbers, whatever made them
    differ, and a kernel keyed by its text can never be used with another trace's numbers.  What
    the generator decides by a number's value (a size-1 axis broadcast, a slice's step, a loop
    split at an offset) shows in the text, so traces that differ there get kernels of their own.
    Numbers that read better spelled out (0, 1, 0.5, 2.0, ...) stay literal.

    `literal=True` spells every number out: kernels specialised to the exact sizes
    (`$JITGRAD_LITERAL_SIZES=1`; benchmarks/README.md has what it measures)."""

    KEEP_FLOATS = frozenset({0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0})

    def __init__(self, literal: bool = False):
        self.literal = literal
        self.ints: dict[int, str] = {}
        self.offsets: dict[int, str] = {}
        self.floats: dict[float, str] = {}

    def size(self, n) -> str:
        """An integer of the code: a size, a bound, an offset."""
        n = int(n)
        if self.literal or n < 2:
            return literal(n)
        return self.ints.setdefault(n, f"N{len(self.ints)}")

    def offset(self, n) -> str:
        """Where a slice starts: named apart from the sizes (`S0, S1, ...`), so that the
        minibatches `x[k*b:(k+1)*b]` of one loss give one kernel text whichever sizes their
        starts happen to equal."""
        n = int(n)
        if self.literal or -2 < n < 2:
            return literal(n)
        return self.offsets.setdefault(n, f"S{len(self.offsets)}")

    def span_note(self, span) -> str:
        """A slice's `Span` in a comment: its start named as the code names it, and its length
        (`S0:+200`, which `comment` then writes `S0:+N0`)."""
        step = f":{span.step}" if span.step != 1 else ""
        return f"{self.offset(span.start)}:+{span.count}{step}"

    def number(self, value) -> str:
        """A scalar constant of the traced function (an `ir.Lit`)."""
        if not self.literal and type(value) is float and math.isfinite(value) \
                and value not in self.KEEP_FLOATS:
            return self.floats.setdefault(value, f"F{len(self.floats)}")
        if type(value) is int:
            return self.size(value)
        return literal(value)

    def values(self) -> tuple:
        """The kernel's `lifted` argument."""
        return (*self.ints, *self.offsets, *self.floats)

    def names(self) -> dict:
        return {**{v: k for k, v in self.ints.items()}, **{v: k for k, v in self.offsets.items()},
                **{v: k for k, v in self.floats.items()}}

    def unpack(self) -> str:
        names = [*self.ints.values(), *self.offsets.values(), *self.floats.values()]
        return f"{', '.join(names)}, = lifted" if names else ""

    def comment(self, text: str) -> str:
        """A comment's numbers that the code reads as names, named: the comment is the same
        text whatever the sizes, as the code is."""
        def name(m):
            token = m.group(0)
            if re.fullmatch(r"-?\d+", token):
                return self.ints.get(int(token), token)
            return self.floats.get(float(token), token)

        return _NUMBER.sub(name, text)


_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d*(?:e[-+]?\d+)?|\d+e[-+]?\d+|\d+)(?![\w.])")
_NOTE = re.compile("\x01([^\x02]*)\x02")


def _note(text: str) -> str:
    """Comment text, marked for `Lifted.comment` (which runs once every number has its name)."""
    return "\x01" + _comment(text) + "\x02"


def shape_code(shape, lift: Lifted) -> str:
    return "(" + "".join(f"{n if isinstance(n, str) else lift.size(n)}, "
                         for n in shape).rstrip(" ") + ")"


def _affine(start: int, step: int, index: str, lift: Lifted) -> str:
    if index.isdigit():
        return lift.offset(start + step * int(index))
    m = re.fullmatch(r"(i\d+)(?: ([+-]) (\d+))?", index)
    if m and m.group(2):  # fold the offset: start + step * (i + c)
        c = int(m.group(3)) * (1 if m.group(2) == "+" else -1)
        return _affine(start + step * c, step, m.group(1), lift)
    term = index if " " not in index else f"({index})"
    if step != 1:
        if step > 0:
            term = f"{term} * {step}"
        else:
            term = f"-{term}" if step == -1 else f"-{term} * {-step}"
    if start == 0:
        return term
    if term.startswith("-"):
        return f"{lift.offset(start)} + {term}"
    return f"{term} + {lift.offset(start)}" if start > 0 else f"{term} - {lift.offset(-start)}"


def _broadcast_index(index: tuple, out_shape, in_shape) -> tuple:
    # Index 0 only where broadcasting stretches the axis: an unstretched size-1 axis keeps the
    # loop's own index, so the same element is always spelled the same way.
    lead = len(out_shape) - len(in_shape)
    return tuple("0" if n == 1 and out_shape[lead + j] != 1 else index[lead + j]
                 for j, n in enumerate(in_shape))


def view_index(stmt, index: tuple, lift: Lifted) -> tuple:
    """The operand index a view statement's element `index` reads."""
    x = stmt.inputs[0]
    if stmt.prim is Prim.broadcast_to:
        return _broadcast_index(index, stmt.out.shape, x.shape)
    if stmt.prim is Prim.slice:
        it = iter(index)
        return tuple(_affine(s.start, s.step, next(it), lift) if isinstance(s, Span)
                     else lift.size(s) for s in stmt.params["index"])
    if stmt.prim is Prim.transpose:
        out = [None] * x.ndim
        for d, p in enumerate(stmt.params["perm"]):
            out[p] = index[d]
        return tuple(out)
    if is_unit_reshape(stmt):
        kept = iter(i for i, n in zip(index, stmt.out.shape) if n != 1)
        return tuple("0" if n == 1 else next(kept) for n in x.shape)
    raise JitgradInternalError(f"not a view: {format_stmt(stmt)}")


def _depth(index: tuple) -> int:
    levels = [int(m) for i in index for m in re.findall(r"\bi(\d+)\b", i)]
    return max(levels) + 1 if levels else 0


class _LoopBody:
    """Writes one loop nest's per-element code, computing each (value, index) once."""

    def __init__(self, schedule: Schedule, depth: int, lift: Lifted, budget=None):
        self.schedule, self.lift = schedule, lift
        self.budget = budget if budget is not None else _Budget(math.inf)
        self.lines: list[list[str]] = [[] for _ in range(depth + 1)]
        self.memo: dict = {}
        self.names: dict[Var, int] = {}
        self.stored: set[Var] = set()  # arrays this nest writes

    def _name(self, var: Var) -> str:
        n = self.names.get(var, 0)
        self.names[var] = n + 1
        return f"s{var.id}" if n == 0 else f"s{var.id}_{n}"

    def value(self, atom, index: tuple) -> tuple[str, int]:
        """(expression, loop depth it needs) of `atom` at `index`."""
        if isinstance(atom, Lit):
            return self.lift.number(atom.value), 0
        key = (atom, index)
        if key in self.memo:
            return self.memo[key]
        if atom in self.stored:
            # The schedule lets a nest read what it stores only at the element being stored.
            raise JitgradInternalError(f"{atom.name} is read at {index} in the nest storing it")
        if atom in self.schedule.materialized:
            if atom.ndim == 0:
                result = (atom.name, 0)
            else:
                result = self._assign(atom, f"{atom.name}[{', '.join(index)}]", _depth(index))
        else:
            result = self.compute(self.schedule.producers[atom], index)
        self.memo[key] = result
        return result

    def compute(self, stmt, index: tuple) -> tuple[str, int]:
        """(expression, depth) of a fusible statement's result at `index`."""
        if stmt.prim not in ELEMENTWISE:
            return self.value(stmt.inputs[0], view_index(stmt, index, self.lift))
        # A literal exponent stays literal: Numba picks its power routine by its literal type.
        args = [(literal(a.value), 0) if isinstance(a, Lit) and stmt.prim is Prim.pow and n
                else self.value(a, _broadcast_index(index, stmt.out.shape, a.shape))
                for n, a in enumerate(stmt.inputs)]
        depth = max((d for _, d in args), default=0)
        inner = len(self.lines) - 1
        if stmt.prim in VECMATH and depth == inner > 0 and self.budget.vecmath > 0 \
                and stmt.inputs[0].dtype == stmt.out.dtype:
            # Only in innermost loops (elsewhere nothing vectorises), and only so many a kernel:
            # each inlined function costs LLVM about 10 ms, more in a long unrolled chain.
            code = _math_code(stmt.prim, args[0][0], stmt.out.dtype)
            if code is not None:
                self.budget.vecmath -= 1
                return self._assign(stmt.out, code, depth)
        if stmt.prim is Prim.pow and depth == inner > 0 and self.budget.vecmath >= POW_COST:
            code = _pow_vecmath_code(stmt, [e for e, _ in args])
            if code is not None:
                self.budget.vecmath -= POW_COST
                return self._assign(stmt.out, code, depth)
        return self._assign(stmt.out, self._expr(stmt, [e for e, _ in args]), depth)

    def _assign(self, var: Var, expr: str, depth: int) -> tuple[str, int]:
        name = self._name(var)
        self.lines[depth].append(f"{name} = {expr}")
        return name, depth

    @staticmethod
    def _expr(stmt, args: list[str]) -> str:
        if stmt.prim is Prim.pow:
            return _pow_code(args[0], stmt.inputs[1], args[1], stmt.out.dtype)
        if stmt.prim is Prim.elementwise:
            return op_expr(stmt, args)
        if stmt.prim is Prim.convert:
            dtype = stmt.params["dtype"]
            return f"({args[0]} != 0)" if dtype.kind == "b" else f"{dtype_code(dtype)}({args[0]})"
        return CODE[stmt.prim].format(*args)


def op_params(stmt) -> dict:
    return {k: v for k, v in stmt.params.items() if k != "op"}


def op_expr(stmt, args: list[str]) -> str:
    """The per-element expression of an elementwise op (ops.py)."""
    op = stmt.params["op"]
    if op.scalar is not None:
        static = [_static_code(stmt.params[k]) for k in op.static]
        return f"{function_ref(op.scalar)}({', '.join(args + static)})"
    return op.code.format(*args, **{k: _static_code(v) for k, v in op_params(stmt).items()})


def function_ref(fn) -> str:
    """How generated code names a Numba function of a module: `<module alias>.<name>`; the
    module is imported under that alias at the top of the kernel's source."""
    return f"{module_alias(fn.__module__)}.{fn.__name__}"


def module_alias(module: str) -> str:
    return "m_" + module.replace(".", "_")


def _static_code(value) -> str:
    if isinstance(value, tuple):
        return "(" + "".join(_static_code(v) + ", " for v in value).rstrip(" ") + ")"
    if isinstance(value, np.dtype):
        return dtype_code(value)
    if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
        return literal(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, str):
        return repr(_comment(value))
    raise JitgradInternalError(f"a parameter of type {type(value).__name__} cannot be written "
                               f"into generated code: {value!r}")


_UNPACK = "    \x03"  # the line that names the lifted numbers, once they are all known


# IEEE semantics: no fast-math flag that may fold inf or nan away ("reassoc" alone lets LLVM turn
# log(exp(x)) into x and (x * 2) / 2 into x); "contract" (fused multiply-add) only rounds less.
DECORATOR = '@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})'


# Multi-core nests: a nest of at least PARALLEL_MIN_ELEMENTS iterations (a kernel generated for
# such sizes) runs its rows in PARALLEL_CHUNKS chunks (fewer if it has fewer rows) with
# numba.prange, each chunk's partial reductions combined after it, in chunk order.  The chunks
# do not depend on the number of threads, so neither does the rounding of a result.
PARALLEL_MIN_ELEMENTS = int(os.environ.get("JITGRAD_PARALLEL_MIN_ELEMENTS", "65536"))
PARALLEL_CHUNKS = 32
PARALLEL_DECORATOR = DECORATOR[:-1] + ", parallel=True)"


def parallel_enabled() -> bool:
    """JITGRAD_PARALLEL=0 turns multi-core nests off; so does a machine with one core, and a
    Numba without a threading layer that is safe to call from several threads (workqueue)."""
    if os.environ.get("JITGRAD_PARALLEL", "1").strip().lower() in ("0", "false", "no"):
        return False
    if os.environ.get("NUMBA_NUM_THREADS", "").strip() == "1":
        return False
    if os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower() == "workqueue":
        return False
    return len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1) > 1


# Calls that run library code with threads of its own (BLAS, LAPACK).  A kernel that makes one
# keeps its nests serial: Numba's OpenMP threads spin for a while after a parallel nest, and on
# the cores they spin on BLAS runs at half speed (a 784-512-10 MLP's gradient at batch 256 took
# 17.6 ms with parallel nests, 7.0 ms without).
THREADED_OPS = {"batched_matmul", "inv", "det", "slogdet", "solve", "solve_triangular",
                "cholesky", "eigh", "eig", "pinv", "svd", "solve_sylvester", "sqrtm"}


def threads_pay(schedule: Schedule) -> bool:
    """May the kernel's nests run on several threads: no step calls threaded library code?"""
    for step in schedule.steps:
        if not isinstance(step, Call):
            continue
        stmt = step.stmt
        if stmt.prim is Prim.matmul:
            return False
        if stmt.prim is Prim.call:
            name = stmt.params["op"].name
            if name in THREADED_OPS or name.startswith("convolve"):
                return False
    return True


def _costly_work(sinks, schedule: Schedule) -> bool:
    """Does a nest compute, per element, a statement that costs more than a load (a function
    call, a division, a row's dot product)?  One that only adds and multiplies is bound by
    memory, and a second core does not make it faster (Rosenbrock-1M's gradient: 591 us on one
    core, 814 on two, its pages faulted in from both)."""
    stack = []
    for sink in sinks:
        if sink.kind in ("rowdot", "rowaxpy"):
            return True
        if sink.kind == "store":  # the stored value is computed here, from its operands
            stmt = schedule.producers[sink.var]
            if costly(stmt):
                return True
            stack += [a for a in stmt.inputs if isinstance(a, Var)]
        else:
            stack.append(sink.stmt.inputs[0 if sink.kind == "reduce" else 1])
    seen = set()
    while stack:
        var = stack.pop()
        if not isinstance(var, Var) or var in seen or var in schedule.materialized:
            continue  # a load
        seen.add(var)
        stmt = schedule.producers[var]
        if costly(stmt):
            return True
        stack += [a for a in stmt.inputs if isinstance(a, Var)]
    return False


# Reductions whose per-chunk partials fold into the result (in chunk order).
PARTIAL_REDUCTIONS = (Prim.reduce_sum, Prim.reduce_max, Prim.reduce_min)


def _parallel_nest(loop: Loop, schedule: Schedule) -> bool:
    """Can the nest run its rows (the outer axis) in chunks on several threads, and is it worth
    it (given that the kernel may use threads: `KernelWriter.threads`)?  Every row must write
    only its own elements (stores, and reductions that keep the outer axis) or reduce into
    per-chunk partials; a scatter (several rows adding into one element) stays serial."""
    space = loop.space
    # A row product reads a row of its matrix at each element of the nest.
    width = max([s.stmt.inputs[0].shape[1] if s.kind == "rowdot" else s.stmt.inputs[0].shape[0]
                 for s in loop.sinks if s.kind in ("rowdot", "rowaxpy")], default=1)
    if len(space) == 0 or space[0] < 2 or math.prod(space) * width < PARALLEL_MIN_ELEMENTS:
        return False
    for sink in loop.sinks:
        if sink.kind == "scatter" or (sink.kind == "store" and sink.var.ndim == 0):
            return False
        if sink.kind == "reduce" and sink.stmt.prim not in PARTIAL_REDUCTIONS:
            return False
    return _costly_work(loop.sinks, schedule)


class _Chunks:
    """The chunks of a parallel nest: their names, and the code before and after it."""

    def __init__(self, n: int, rows: int, lift: Lifted):
        self.name, self.count, self.rows = f"c{n}", f"nc{n}", lift.size(rows)
        self.setup: list[str] = []  # partials' allocations
        self.combine: list[str] = []  # partials into results, chunk by chunk


def _combine_code(var: Var, part: str, count: str, update: str) -> list[str]:
    """`var` from its chunks' partials `part` (shape (chunks, *var.shape)), folded in order."""
    if var.ndim == 0:
        return [f"{var.name} = {part}[0]", f"for c in range(1, {count}):",
                "    " + update.format(acc=var.name, v=f"{part}[c]")]
    flat, parts = f"flat{var.id}", f"parts{var.id}"
    return [f"{var.name} = {part}[0].copy()", f"{flat} = {var.name}.reshape(-1)",
            f"{parts} = {part}.reshape(({count}, -1))", f"for c in range(1, {count}):",
            f"    for j in range({parts}.shape[1]):",
            "        " + update.format(acc=f"{flat}[j]", v=f"{parts}[c, j]")]


class KernelTooLong(Exception):
    """The kernel's source would be longer than `generate`'s `max_lines`."""


class _Budget:
    """Lines written so far by a kernel's writers (its function and its regions' helpers)."""

    def __init__(self, limit: float):
        self.lines, self.limit = 0, limit
        self.vecmath = VECMATH_MAX_CALLS  # calls of vecmath the kernel may still inline


class KernelWriter:
    """Writes one Numba function for a schedule; regions (loop bodies, branches) become helper
    functions of their own, appended to `helpers`."""

    def __init__(self, schedule: Schedule, helpers: list[str], counter, lift: Lifted,
                 is_region=False, budget: _Budget | None = None):
        self.schedule, self.helpers, self.counter = schedule, helpers, counter
        self.lift, self.is_region = lift, is_region
        self.budget = budget or _Budget(math.inf)
        self.lines: list[str] = []
        self.chunks: _Chunks | None = None  # of the parallel nest being written
        self.parallel = False  # has a parallel nest: compiled with parallel=True
        # May its nests run on several threads at all (once per kernel, not per nest)?
        self.threads = not is_region and parallel_enabled() and threads_pay(schedule)

    def out(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)
        self.budget.lines += 1
        if self.budget.lines > self.budget.limit:
            raise KernelTooLong(self.budget.limit)

    def function(self, name: str) -> str:
        graph = self.schedule.graph
        params = "".join(v.name + ", " for v in graph.inputs + graph.consts) + "lifted"
        self.lines = [DECORATOR, f"def {name}({params}):", _UNPACK]
        self.overwritten = self._overwritten_buffers()
        for step in self.schedule.steps:
            if isinstance(step, Loop):
                self.loop(step)
            else:
                self.call(step)
        self.out(1, "return (" + "".join(f"{r}, " for r in self.results()).rstrip(" ") + ")")
        if self.parallel:
            self.lines[0] = PARALLEL_DECORATOR
        return "\n".join(self.lines) + "\n"

    def _overwritten_buffers(self) -> set:
        """Zero-filled buffers whose every element a gather nest writes first: they need no
        zeroing (np.empty), and the gather assigns instead of adding."""
        out = set()
        for step in self.schedule.steps:
            if isinstance(step, Loop) and _gather_plan(step) is not None:
                for sink in step.sinks:
                    base = sink.stmt.inputs[0] if sink.kind == "scatter" else None
                    producer = self.schedule.producers.get(base)
                    if sink.inplace and producer is not None and producer.prim is Prim.full \
                            and producer.params["value"] == 0 and base.ndim:
                        out.add(base)
        return out

    def region(self, graph, prefix: str) -> str:
        """Generate a region as a helper function; returns its name."""
        from .fuse import schedule

        name = f"{prefix}_{next(self.counter)}"
        writer = KernelWriter(schedule(graph), self.helpers, self.counter, self.lift,
                              is_region=True, budget=self.budget)
        self.helpers.append(writer.function(name))
        return name

    def results(self) -> list[str]:
        graph, out = self.schedule.graph, []
        for a in graph.outputs:
            if isinstance(a, Lit):
                out.append(self.lift.number(a.value))
                continue
            if self.is_region:
                out.append(a.name)  # regions never write their values in place: no copies
                continue
            stmt = self.schedule.producers.get(a)
            # What the caller gets must be its own array, never one of its arguments.
            aliased = self.schedule.aliases_argument(a) or (
                stmt is not None and stmt.prim in MULTI)
            copy = a.ndim > 0 and (aliased or a.name in out)
            out.append(f"{a.name}.copy()" if copy else a.name)
        return out

    # --- steps outside loops ------------------------------------------------------------------
    def call(self, step: Call) -> None:
        stmt = step.stmt
        x = stmt.inputs[0] if stmt.inputs else None
        if stmt.prim is Prim.transpose:
            perm = stmt.params["perm"]
            rhs = f"{x.name}.T" if perm == (1, 0) else f"np.transpose({x.name}, {perm})"
        elif stmt.prim is Prim.slice:
            rhs = f"{x.name}[{', '.join(_span_code(i, self.lift) for i in stmt.params['index'])}]"
        elif stmt.prim is Prim.matmul:
            dtype = stmt.out.dtype
            if dtype.kind in "biu":  # BLAS has no integer product: float64, cast back
                a, b = (self._float(v, np.dtype(np.float64)) for v in stmt.inputs)
                rhs = f"runtime.matmul({a}, {b}).astype({dtype_code(dtype)})"
            else:
                a, b = (self._float(v, dtype) for v in stmt.inputs)
                rhs = f"runtime.matmul({a}, {b})"
        elif stmt.prim is Prim.full:
            p = stmt.params
            shape, dt = shape_code(p["shape"], self.lift), dtype_code(p["dtype"])
            if not p["shape"]:
                rhs = f"{dt}({literal(p['value'])})"  # 0-d: a scalar, like every 0-d value
            elif stmt.out in self.overwritten:
                rhs = f"np.empty({shape}, {dt})  # every element written by a gather below"
            elif p["value"] == 0:
                rhs = f"np.zeros({shape}, {dt})"
            else:
                rhs = f"np.full({shape}, {literal(p['value'])}, {dt})"
        elif stmt.prim is Prim.reshape:
            rhs = (f"np.ascontiguousarray({x.name})"
                   f".reshape({shape_code(stmt.out.shape, self.lift)})")
        elif stmt.prim is Prim.call:
            op = stmt.params["op"]
            args = [self._atom(a) for a in stmt.inputs]
            args += [_static_code(stmt.params[k]) for k in op.static]
            outs = ", ".join(v.name for v in stmt.outs)  # the kernel returns a tuple if several
            call = f"{function_ref(op.kernel)}({', '.join(args)})"
            self.out(1, f"{outs} = {call}  # {_note(format_stmt(stmt, self.lift.span_note))}")
            return
        elif stmt.prim in CONTROL:
            self.out(1, f"# {_note(format_stmt(stmt, self.lift.span_note))}")
            return {Prim.while_loop: self.while_loop, Prim.scan: self.scan,
                    Prim.cond: self.cond}[stmt.prim](stmt, [self._atom(a) for a in stmt.inputs])
        else:
            raise JitgradInternalError(f"no code for {format_stmt(stmt)}")
        self.out(1, f"{stmt.out.name} = {rhs}  # {_note(format_stmt(stmt, self.lift.span_note))}")

    # --- control flow -------------------------------------------------------------------------
    def while_loop(self, stmt, ops) -> None:
        cond, body = stmt.params["cond"], stmt.params["body"]
        nc, nb, k = len(cond.consts), len(body.consts), len(body.inputs)
        cond_fn, body_fn = self.region(cond, "cond"), self.region(body, "body")
        carried = [v.name for v in stmt.outs[:k]]
        for name, init in zip(carried, ops[nc + nb:]):
            self.out(1, f"{name} = {init}")
        from . import control

        save = stmt.params.get("save")
        limit = stmt.params.get("max_iterations", control.MAX_LOOP_ITERATIONS)
        # The message is a literal of the generated source: made printable ASCII, then quoted.
        message = control.loop_limit_message(stmt.params.get("where", "<unknown>"), limit)
        error = f"raise RuntimeError({_comment(message)!r})"
        if save:
            tapes, count = stmt.outs[k:2 * k], stmt.outs[2 * k]
            n, cap = f"n{count.id}", f"cap{count.id}"
            self.out(1, f"{n} = 0")
            self.out(1, f"{cap} = {min(16, limit)}")
            for tape, v in zip(tapes, body.inputs):
                self.out(1, f"{tape.name} = {_tape_rows(cap, v, self.lift)}")
        else:
            n = f"n_{next(self.counter)}"
            self.out(1, f"{n} = 0")
        self.out(1, f"while {cond_fn}({', '.join(carried + ops[:nc] + ['lifted'])})[0]:")
        if save:
            # The tape of carried values, one row per iteration, grown by doubling up to the
            # iteration limit, which is checked only when the tape is full: no cost per iteration.
            self.out(2, f"if {n} == {cap}:")
            self.out(3, f"if {n} == {limit}:")
            self.out(4, error)
            self.out(3, f"{cap} = min({cap} * 2, {limit})")
            # Element loops, not slice assignment: Numba takes seconds to compile the latter.
            for tape, v in zip(tapes, body.inputs):
                self.out(3, f"{tape.name}_grown = {_tape_rows(cap, v, self.lift)}")
                self.copy_loops(3, f"{tape.name}_grown[{{i}}]", f"{tape.name}[{{i}}]",
                                (n,) + v.shape)
                self.out(3, f"{tape.name} = {tape.name}_grown")
            for tape, name, v in zip(tapes, carried, body.inputs):
                if v.ndim:
                    self.copy_loops(2, f"{tape.name}[{n}, {{i}}]", f"{name}[{{i}}]", v.shape)
                else:
                    self.out(2, f"{tape.name}[{n}] = {name}")
        else:
            self.out(2, f"if {n} == {limit}:")
            self.out(3, error)
        self.out(2, f"{n} += 1")
        self.out(2, f"{''.join(c + ', ' for c in carried)}= {body_fn}("
                    f"{', '.join(carried + ops[nc:nc + nb] + ['lifted'])})")
        if save:
            self.out(1, f"{count.name} = {n}")

    def copy_loops(self, indent: int, dst: str, src: str, shape) -> None:
        """`dst = src` for every element of `shape`, one loop per axis; `{i}` in `dst` and `src`
        stands for the loop indices."""
        names = [f"q{d}" for d in range(len(shape))]
        for d, (name, n) in enumerate(zip(names, shape)):
            bound = n if isinstance(n, str) else self.lift.size(n)
            self.out(indent + d, f"for {name} in range({bound}):")
        i = ", ".join(names)
        self.out(indent + len(shape), f"{dst.format(i=i)} = {src.format(i=i)}")

    def scan(self, stmt, ops) -> None:
        p, body = stmt.params, stmt.params["body"]
        nc, nx = p["n_consts"], p["n_xs"]
        body_fn = self.region(body, "scan")
        consts, xs, length, init = ops[:nc], ops[nc:nc + nx], ops[nc + nx], ops[nc + nx + 1:]
        if isinstance(stmt.inputs[nc + nx], Lit):  # the trip count: a size, as a loop's bound
            length = self.lift.size(stmt.inputs[nc + nx].value)
        carried, ys = stmt.outs[:len(init)], stmt.outs[len(init):]
        for v, value in zip(carried, init):
            self.out(1, f"{v.name} = {value}")
        for y in ys:
            self.out(1, f"{y.name} = {_tape_rows(length, _row(y), self.lift)}")
        k, r = f"k{stmt.out.id}", f"r{stmt.out.id}"
        order = f"range({length} - 1, -1, -1)" if p["reverse"] else f"range({length})"
        self.out(1, f"for {k} in {order}:")
        args = consts + [f"{x}[{k}]" for x in xs] + [v.name for v in carried] + ["lifted"]
        self.out(2, f"{r} = {body_fn}({', '.join(args)})")
        for n, v in enumerate(carried):
            self.out(2, f"{v.name} = {r}[{n}]")
        for n, y in enumerate(ys, len(carried)):
            if y.ndim > 1:  # element loops: Numba takes seconds to compile a slice assignment
                self.copy_loops(2, f"{y.name}[{k}, {{i}}]", f"{r}[{n}][{{i}}]", y.shape[1:])
            else:
                self.out(2, f"{y.name}[{k}] = {r}[{n}]")

    def cond(self, stmt, ops) -> None:
        true_fn = self.region(stmt.params["true"], "true")
        false_fn = self.region(stmt.params["false"], "false")
        outs = "".join(v.name + ", " for v in stmt.outs)
        args = ", ".join(ops[1:] + ["lifted"])
        self.out(1, f"if {ops[0]}:")
        self.out(2, f"{outs}= {true_fn}({args})")
        self.out(1, "else:")
        self.out(2, f"{outs}= {false_fn}({args})")

    def _atom(self, a) -> str:
        if isinstance(a, Lit):  # only floats are named: an op may need an int's literal type
            return self.lift.number(a.value) if type(a.value) is float else literal(a.value)
        return a.name

    def _float(self, var, dtype) -> str:
        if isinstance(var, Lit):
            return self._atom(var)
        return var.name if var.dtype == dtype else f"{var.name}.astype({dtype_code(dtype)})"

    # --- loop nests ---------------------------------------------------------------------------
    def loop(self, loop: Loop) -> None:
        plan = _gather_plan(loop)
        if plan is not None:
            return self.gather_loop(loop, *plan)
        space, k = loop.space, len(loop.space)
        body = _LoopBody(self.schedule, k, self.lift, self.budget)
        post: list[list[str]] = [[] for _ in range(k + 1)]
        index = tuple(f"i{d}" for d in range(k))
        described = []
        self.chunks = _Chunks(next(self.counter), space[0], self.lift) \
            if self.threads and _parallel_nest(loop, self.schedule) else None
        for sink in loop.sinks:
            described.append(self.sink(sink, body, post, index))
        chunks, self.chunks = self.chunks, None
        if chunks is None:
            self.out(1, "# " + _note(f"loop over {space}: " + "; ".join(described)))
            self.nest(body, post, [(0, n) for n in space])
            return
        self.out(1, "# " + _note(f"loop over {space}, its rows in chunks on every thread: "
                                 + "; ".join(described)))
        self.parallel = True
        c, n = chunks.name, chunks.count
        self.out(1, f"{n} = min({chunks.rows}, {PARALLEL_CHUNKS})")
        for line in chunks.setup:
            self.out(1, line)
        # The same chunks on one thread as on many (a forked child of a process that ran OpenMP
        # must not start it again, and NUMBA_NUM_THREADS=1 asks for one): the same rounding.
        self.out(1, "if runtime.threads_ok():")
        bounds = [(f"{c} * {chunks.rows} // {n}", f"({c} + 1) * {chunks.rows} // {n}")]
        bounds += [(0, m) for m in space[1:]]
        self.out(2, f"for {c} in numba.prange({n}):")
        self.nest(body, post, bounds, indent=3)
        self.out(1, "else:")
        self.out(2, f"for {c} in range({n}):")
        self.nest(body, post, bounds, indent=3)
        for line in chunks.combine:
            self.out(1, line)

    def nest(self, body: _LoopBody, post, bounds, indent: int = 1) -> None:
        """Emit nested loops over `bounds` ((lo, hi) per axis: sizes, or code) around the body's
        lines."""
        k = len(bounds)

        def emit(d: int) -> None:
            for line in body.lines[d]:
                self.out(indent + d, line)
            if d < k:
                lo, hi = (b if isinstance(b, str) else self.lift.size(b) for b in bounds[d])
                self.out(indent + d, f"for i{d} in range({hi}):" if lo == "0" else
                         f"for i{d} in range({lo}, {hi}):")
                emit(d + 1)
                for line in post[d]:
                    self.out(indent + d, line)

        emit(0)

    def gather_loop(self, loop: Loop, shape, offsets) -> None:
        """A nest that scatters into slices of a buffer (`g[1:] += a; g[:-1] += b`, the adjoint of
        shifted slices), written as a gather over the buffer instead (`g[j] += a[j-1] + b[j]`).
        A scatter makes each iteration read what the previous one wrote, a chain through memory
        that serialises the loop; a gather has no such chain and vectorises.  The buffer's index
        space is cut into segments in which the same sinks are active, so no loop has branches."""
        k, space = len(shape), loop.space
        self.out(1, "# " + _note(f"loop over {space}, as a gather over {shape}: "
                                 + "; ".join(_describe(s, self.lift) for s in loop.sinks)))
        accumulators = {}
        for sink in loop.sinks:
            var = sink.var
            if sink.kind == "scatter":
                base = sink.stmt.inputs[0]
                self.out(1, f"{var.name} = {base.name}" + ("" if sink.inplace else ".copy()"))
            elif sink.kind == "store" and var.ndim:
                self.out(1, f"{var.name} = np.empty({shape_code(var.shape, self.lift)}, "
                            f"{dtype_code(var.dtype)})")
            elif sink.kind == "reduce":
                init, _ = _reduction_code(sink.stmt.prim, var.dtype)
                if var.ndim == 0:
                    accumulators[var] = f"acc{var.id}"
                    self.out(1, f"acc{var.id} = {init}")
                else:
                    self.out(1, f"{var.name} = np.full({shape_code(var.shape, self.lift)}, "
                                f"{init}, {dtype_code(var.dtype)})")
        cuts = [sorted({0, n} | {o[d] for o in offsets.values()}
                       | {o[d] + space[d] for o in offsets.values()}) for d, n in enumerate(shape)]
        fresh = {_buffer_root(s, loop).name for s in loop.sinks
                 if s.kind == "scatter" and _buffer_root(s, loop) is s.var
                 and s.stmt.inputs[0] in self.overwritten}
        for segment in itertools.product(*[list(itertools.pairwise(c)) for c in cuts]):
            active = [s for s in loop.sinks if all(
                offsets[id(s)][d] <= lo and hi <= offsets[id(s)][d] + space[d]
                for d, (lo, hi) in enumerate(segment))]
            if not active and not fresh:
                continue
            body = _LoopBody(self.schedule, k, self.lift, self.budget)
            j = tuple(f"i{d}" for d in range(k))
            totals: dict[str, list[str]] = {}
            for sink in active:
                index = tuple(_affine(-offsets[id(sink)][d], 1, j[d], self.lift)
                              for d in range(k))
                var, stmt = sink.var, sink.stmt
                if sink.kind == "store":
                    value, _ = body.compute(self.schedule.producers[var], index)
                    target = var.name if var.ndim == 0 else f"{var.name}[{', '.join(index)}]"
                    body.lines[k].append(f"{target} = {value}")
                elif sink.kind == "reduce":
                    value, _ = body.value(stmt.inputs[0], index)
                    _, update = _reduction_code(stmt.prim, var.dtype)
                    axes, keepdims = stmt.params["axes"], stmt.params["keepdims"]
                    target = accumulators.get(var) or f"{var.name}[" + ", ".join(
                        "0" if d in axes else index[d] for d in range(k)
                        if keepdims or d not in axes) + "]"
                    body.lines[k].append(update.format(acc=target, v=value))
                else:
                    value, _ = body.value(stmt.inputs[1], index)
                    totals.setdefault(_buffer_root(sink, loop).name, []).append(value)
            for name in fresh - set(totals):
                body.lines[k].append(f"{name}[{', '.join(j)}] = 0.0")
            for name, values in totals.items():
                op = "=" if name in fresh else "+="
                body.lines[k].append(f"{name}[{', '.join(j)}] {op} {' + '.join(values)}")
            if self._parallel_segment(segment, active):
                self.chunked_segment(body, segment, active, accumulators)
            else:
                self.nest(body, [[] for _ in range(k + 1)], segment)
        for var, acc in accumulators.items():
            self.out(1, f"{var.name} = {acc}")

    def _parallel_segment(self, segment, active) -> bool:
        """Can a gather's segment run its rows in chunks on several threads?  Each row writes its
        own elements of the buffers; a reduction must be a sum, max or min into an accumulator
        (per-chunk partials) or keep the rows (each row its own element)."""
        if not self.threads or segment[0][1] - segment[0][0] < 2 \
                or math.prod(hi - lo for lo, hi in segment) < PARALLEL_MIN_ELEMENTS:
            return False
        for sink in active:
            if sink.kind == "reduce" and (sink.stmt.prim not in PARTIAL_REDUCTIONS
                                          or sink.var.ndim and 0 in sink.stmt.params["axes"]):
                return False
        return _costly_work(active, self.schedule)

    def chunked_segment(self, body: _LoopBody, segment, active, accumulators) -> None:
        """A gather's segment with its rows in chunks, as `loop` runs a parallel nest: each
        chunk's accumulators into partials, folded in chunk order after it, so the rounding does
        not depend on the number of threads."""
        k = len(segment)
        chunk = f"c{next(self.counter)}"
        count = f"n{chunk}"
        lo, hi = (self.lift.size(b) for b in segment[0])
        rows = f"({hi} - {lo})" if lo != "0" else hi
        post: list[list[str]] = [[] for _ in range(k + 1)]
        self.out(1, f"{count} = min({rows}, {PARALLEL_CHUNKS})")
        fold = []
        for sink in active:
            acc = accumulators.get(sink.var) if sink.kind == "reduce" else None
            if acc is None:
                continue
            init, update = _reduction_code(sink.stmt.prim, sink.var.dtype)
            part, local = f"part{sink.var.id}_{chunk}", f"c{acc}"
            self.out(1, f"{part} = np.full(({count},), {init}, {dtype_code(sink.var.dtype)})")
            body.lines[0].insert(0, f"{local} = {init}")
            body.lines[k] = [re.sub(rf"\b{acc}\b", local, line) for line in body.lines[k]]
            post[0].append(f"{part}[{chunk}] = {local}")
            fold += [f"for {chunk} in range({count}):",
                     "    " + update.format(acc=acc, v=f"{part}[{chunk}]")]
        bounds = [(f"{lo} + {chunk} * {rows} // {count}",
                   f"{lo} + ({chunk} + 1) * {rows} // {count}")] + list(segment[1:])
        self.parallel = True
        self.out(1, "if runtime.threads_ok():")
        self.out(2, f"for {chunk} in numba.prange({count}):")
        self.nest(body, post, bounds, indent=3)
        self.out(1, "else:")
        self.out(2, f"for {chunk} in range({count}):")
        self.nest(body, post, bounds, indent=3)
        for line in fold:
            self.out(1, line)

    def sink(self, sink: Sink, body: _LoopBody, post, index) -> str:
        k, var = len(index), sink.var
        inner = body.lines[k]
        if sink.kind == "store":
            stmt = self.schedule.producers[var]
            value, depth = body.compute(stmt, index)
            body.memo[(var, index)] = (value, depth)  # later sinks of this nest read the local
            body.stored.add(var)
            if var.ndim == 0:
                inner.append(f"{var.name} = {value}")
            else:
                self.out(1, f"{var.name} = np.empty({shape_code(var.shape, self.lift)}, "
                            f"{dtype_code(var.dtype)})")
                inner.append(f"{var.name}[{', '.join(index)}] = {value}")
            return f"store {var.name}"
        if sink.kind in ("rowdot", "rowaxpy"):
            return self.row_product(sink, body, index)
        stmt = sink.stmt
        if sink.kind == "scatter":
            base, update = stmt.inputs
            self.out(1, f"{var.name} = {base.name}" + ("" if sink.inplace else ".copy()"))
            value, _ = body.value(update, index)
            it = iter(index)
            target = [_affine(s.start, s.step, next(it), self.lift) if isinstance(s, Span)
                      else self.lift.size(s) for s in stmt.params["index"]]
            inner.append(f"{var.name}[{', '.join(target)}] += {value}")
            return f"{var.name} = {format_stmt(stmt, self.lift.span_note).split(' = ', 1)[1]}"
        return self.reduction(sink, body, post, index)

    def row_product(self, sink: Sink, body: _LoopBody, index) -> str:
        """Row `i` of `y = X @ w` (a dot product, stored, and the local later sinks read), or
        its part of `r = X.T @ v` (`r += v[i] * X[i, :]`, into per-chunk partials on
        several threads).  X's row is read from L1 by the second of the two."""
        (i,) = index
        var, stmt, inner = sink.var, sink.stmt, body.lines[1]
        j = f"j{var.id}"
        unit = ", 0" if var.ndim == 2 else ""
        dtype = dtype_code(var.dtype)
        if sink.kind == "rowdot":
            x, w = stmt.inputs
            acc = f"dot{var.id}"
            inner += [f"{acc} = 0.0", f"for {j} in range({self.lift.size(x.shape[1])}):",
                      f"    {acc} = sum_add({acc}, {x.name}[{i}, {j}] * {w.name}[{j}"
                      f"{', 0' if w.ndim == 2 else ''}])",
                      f"{var.name}[{i}{unit}] = {acc}"]
            self.out(1, f"{var.name} = np.empty({shape_code(var.shape, self.lift)}, {dtype})")
            body.memo[(var, (i,) if var.ndim == 1 else (i, "0"))] = (acc, 1)
            body.stored.add(var)
            return f"{var.name} = {x.name} @ {w.name}, row by row"
        t, v = stmt.inputs
        x = self.schedule.producers[t].inputs[0]
        value, _ = body.value(v, (i,) if v.ndim == 1 else (i, "0"))
        chunks = self.chunks
        if chunks is None:
            self.out(1, f"{var.name} = np.zeros({shape_code(var.shape, self.lift)}, {dtype})")
            target = f"{var.name}[{j}{unit}]"
        else:
            part = f"part{var.id}"
            chunks.setup.append(f"{part} = np.zeros("
                                f"{shape_code((chunks.count,) + var.shape, self.lift)}, {dtype})")
            target = f"{part}[{chunks.name}, {j}{unit}]"
            chunks.combine += _combine_code(var, part, chunks.count,
                                            _reduction_code(Prim.reduce_sum, var.dtype)[1])
        inner += [f"for {j} in range({self.lift.size(x.shape[1])}):",
                  f"    {target} += {value} * {x.name}[{i}, {j}]"]
        return f"{var.name} = {x.name}.T @ {v.name}, row by row"

    def reduction(self, sink: Sink, body: _LoopBody, post, index) -> str:
        stmt, var = sink.stmt, sink.var
        k = len(index)
        axes, keepdims = stmt.params["axes"], stmt.params["keepdims"]
        value, _ = body.value(stmt.inputs[0], index)
        dtype = var.dtype
        init, update = _reduction_code(stmt.prim, dtype)
        out_index = [("0" if keepdims else None) if d in axes else index[d] for d in range(k)]
        out_index = [i for i in out_index if i is not None]
        r = k - len(axes)
        chunks = self.chunks if 0 in axes else None
        if chunks is not None:
            # Over the rows of a parallel nest: one partial result per chunk, combined after it.
            part = f"part{var.id}"
            shape = shape_code((chunks.count,) + var.shape, self.lift)
            chunks.setup.append(f"{part} = np.full({shape}, {init}, {dtype_code(dtype)})")
            target = f"{part}[{', '.join([chunks.name] + out_index)}]"
            if r == 0:  # every axis: a local accumulator per chunk
                acc = f"acc{var.id}"
                body.lines[0].append(f"{acc} = {init}")
                body.lines[k].append(update.format(acc=acc, v=value))
                post[0].append(f"{target} = {acc}")
            else:
                body.lines[k].append(update.format(acc=target, v=value))
            chunks.combine += _combine_code(var, part, chunks.count, update)
        elif axes == tuple(range(r, k)):
            # Reduced axes innermost: accumulate in a local, store once per outer element.
            acc = f"acc{var.id}"
            body.lines[r].append(f"{acc} = {init}")
            body.lines[k].append(update.format(acc=acc, v=value))
            if var.ndim == 0:
                post[r].append(f"{var.name} = {acc}")
            else:
                self.out(1, f"{var.name} = np.empty({shape_code(var.shape, self.lift)}, "
                            f"{dtype_code(dtype)})")
                post[r].append(f"{var.name}[{', '.join(out_index)}] = {acc}")
        else:
            self.out(1, f"{var.name} = np.full({shape_code(var.shape, self.lift)}, {init}, "
                        f"{dtype_code(dtype)})")
            target = f"{var.name}[{', '.join(out_index)}]"
            body.lines[k].append(update.format(acc=target, v=value))
        return f"{var.name} = {format_stmt(stmt, self.lift.span_note).split(' = ', 1)[1]}"


def _row(var):
    """The type of one row of a (-1, ...)-shaped value: what a loop reads or writes per step."""
    return Var(-1, var.shape[1:], var.dtype)


def _tape_rows(rows: str, var, lift: Lifted) -> str:
    return f"np.empty({shape_code((rows,) + var.shape, lift)}, {dtype_code(var.dtype)})"


def _reduction_code(prim, dtype) -> tuple[str, str]:
    """(initial value, update template) of a reduction's accumulator."""
    if prim is Prim.reduce_sum:
        if dtype.kind == "f":
            return "0.0", "{acc} = sum_add({acc}, {v})"
        if dtype.kind == "c":
            return "0j", "{acc} += {v}"
        return "0", "{acc} += {v}"
    is_max = prim is Prim.reduce_max
    if dtype.kind == "f":
        init = "-np.inf" if is_max else "np.inf"
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        init = str(info.min if is_max else info.max)
    else:
        init = str(not is_max)
    return init, "{acc} = " + ("np.maximum" if is_max else "np.minimum") + "({acc}, {v})"


def _describe(sink: Sink, lift: Lifted) -> str:
    if sink.kind == "store":
        return f"store {sink.var.name}"
    return f"{sink.var.name} = {format_stmt(sink.stmt, lift.span_note).split(' = ', 1)[1]}"


def _gather_plan(loop: Loop):
    """(buffer shape, offset of each sink) if the nest's scatters should become a gather:
    they all fill unit-step slices of buffers of one shape, at least one of them shifted."""
    scatters = [s for s in loop.sinks if s.kind == "scatter"]
    shapes = {s.var.shape for s in scatters}
    if len(shapes) != 1 or any(s.kind in ("rowdot", "rowaxpy") for s in loop.sinks):
        return None  # (a row product's row is the nest's element: no gather over another space)
    (shape,) = shapes
    k = len(loop.space)
    if len(shape) != k:
        return None
    offsets = {}
    for sink in loop.sinks:
        offsets[id(sink)] = (0,) * k
        if sink.kind == "scatter":
            index = sink.stmt.params["index"]
            if not all(isinstance(e, Span) and e.step == 1 for e in index):
                return None
            offsets[id(sink)] = tuple(e.start for e in index)
    if shape == loop.space and all(o == (0,) * k for o in offsets.values()):
        return None  # nothing is shifted: the scatter already is a gather
    return shape, offsets


def _buffer_root(sink: Sink, loop: Loop) -> Var:
    """The first variable of an in-place chain of scatters in this nest: they share a buffer."""
    outs = {s.var: s for s in loop.sinks if s.kind == "scatter"}
    while sink.inplace and sink.stmt.inputs[0] in outs:
        sink = outs[sink.stmt.inputs[0]]
    return sink.var


def _span_code(s, lift: Lifted) -> str:
    """A basic index's entry as NumPy code: a Span from its named start (its stop is the start
    and its length, not a number of its own), or an integer."""
    if isinstance(s, Span) and s.step > 0:
        start = lift.offset(s.start)
        length = lift.size(s.step * s.count)
        stop = length if start == "0" else f"{start} + {length}"
        return f"{'' if start == '0' else start}:{stop}" + (f":{s.step}" if s.step != 1 else "")
    return _slice_code(numpy_index((s,))[0], lift)


def _slice_code(s, lift: Lifted) -> str:
    if isinstance(s, slice):
        start = "" if s.start is None else lift.size(s.start)
        stop = "" if s.stop is None else lift.size(s.stop)
        return f"{start}:{stop}" + (f":{s.step}" if s.step not in (None, 1) else "")
    return lift.size(s)


def _comment(text: str) -> str:
    """`text` as printable ASCII: anything else (non-ASCII, control characters) escaped."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _ops(graph) -> list:
    """The family ops (ops.py) a graph and its regions use, in order of first use."""
    found: dict = {}
    for stmt in graph.stmts:
        if "op" in stmt.params and stmt.prim in (Prim.elementwise, Prim.call):
            found.setdefault(id(stmt.params["op"]), stmt.params["op"])
        for value in stmt.params.values():
            if hasattr(value, "stmts"):
                for op in _ops(value):
                    found.setdefault(id(op), op)
    return list(found.values())


def generate(schedule: Schedule, name: str = "kernel", note: str = "",
             literal_sizes: bool | None = None, max_lines: float = math.inf
             ) -> tuple[str, Lifted]:
    """The Python source of a Numba kernel computing the schedule's graph, and the numbers it
    takes as its last argument, `lifted` (see `Lifted`; `literal_sizes`: spell them out,
    default `$JITGRAD_LITERAL_SIZES`).  Raises KernelTooLong as soon as the code passes
    `max_lines` lines (the header not counted): a kernel too long to compile costs no more
    than that to find out."""
    if literal_sizes is None:
        literal_sizes = os.environ.get("JITGRAD_LITERAL_SIZES", "") not in ("", "0")
    lift = Lifted(literal=literal_sizes)
    helpers: list[str] = []
    # The per-element walk recurses once per statement of an elementwise chain; an unrolled loop
    # makes chains thousands deep (Python-to-Python calls: no C stack is used).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000 + 10 * len(schedule.graph.stmts)))
    try:
        main = KernelWriter(schedule, helpers, itertools.count(), lift,
                            budget=_Budget(max_lines)).function(name)
    finally:
        sys.setrecursionlimit(limit)
    graph_text = format_graph(schedule.graph, span=lift.span_note)
    ops = _ops(schedule.graph)
    # The first two lines are fixed text (Python reads an encoding cookie there), and every
    # comment line is printable ASCII: a user's function name or note cannot become code.
    # Only the graph's numbers are named: the note and the ops' fingerprints are not sizes.
    header = (f"Generated by jitgrad. Do not edit.\n\n{note}\n\n"
              + "\n".join(map(_note, graph_text.splitlines())) + "\n")
    for op in ops:
        header += f"op {op.name}: implementation {op.fingerprint()}\n"
    uses_vecmath = any("vecmath." in f for f in helpers + [main])
    if uses_vecmath:
        # Numba's cache of this file does not see vecmath's source change: the kernel's hash does.
        header += f"vecmath: implementation {_vecmath_fingerprint()}\n"
    if lift.values():
        header += ("\nN<k> and F<k> are sizes and constants the kernel reads from its last "
                   "argument,\n`lifted`: one kernel serves every size.\n")
    header = _NOTE.sub(lambda m: lift.comment(m.group(1)), header)
    lines = [f"# {_comment(line)}" if line else "#" for line in header.splitlines()]
    lines += ["import math", "import numpy as np", "import numba", ""]
    lines += ["from jitgrad import runtime"]
    modules = sorted({fn.__module__ for op in ops for fn in op._functions()})
    lines += [f"import {m} as {module_alias(m)}" for m in modules]
    if any("sum_add(" in f for f in helpers + [main]):
        lines.append("from jitgrad.runtime import sum_add")
    if uses_vecmath:
        lines.append("from jitgrad import vecmath")
    lines += ["", ""]
    code = "\n\n".join(helpers + [main])
    code = _NOTE.sub(lambda m: lift.comment(m.group(1)), code)
    unpack = lift.unpack()
    code = code.replace(_UNPACK + "\n", f"    {unpack}\n" if unpack else "")
    return "\n".join(lines) + code, lift
