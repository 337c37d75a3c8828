"""Tracing: run the user's function once on `Tracer` objects and record what it does as IR.

`bind(prim, *args, **params)` is the single entry point every traced operation goes through.  If
one of its arguments is a tracer of the active trace it appends a statement to that trace;
otherwise it evaluates the primitive with NumPy.  So `jitgrad.numpy` functions work on plain
arrays too, and evaluating a graph with `bind` either interprets it (on arrays) or inlines it
into an enclosing trace (on tracers): that is how derivatives compose.
"""

from __future__ import annotations

import functools
import operator
import os
import sys
import threading
import traceback

import numpy as np

from .errors import ArgumentError, ShapeError, TracingError
from .ir import Graph, Lit, Stmt, Var
from .primitives import FLOAT, Prim, apply_numpy, infer

# The active traces, innermost last: one stack per thread, so that threads tracing at the same
# time never see each other's tracers.
_LOCAL = threading.local()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Trace:
    """Records statements while a function runs on tracers."""

    def __init__(self, name: str = "f"):
        self.name = name
        self.stmts: list[Stmt] = []
        self.inputs: list[Var] = []
        self.consts: list[Var] = []
        self.const_values: list = []
        self._const_ids: dict[int, Var] = {}
        self._count = 0
        # What the traced code read from outside its arguments, and what it was: see watch.py.
        self.watches: dict = {}
        # Random draws made by the traced code, replayed before every kernel call: a list for
        # the traces of the API's functions (control._draw), None for regions and adjoints.
        self.draws: list | None = None
        # A region (a branch, a loop body) records the operations on values it captures from
        # the enclosing traces itself, so that they run only where the region runs (a branch
        # not taken computes nothing: its NaNs cannot reach the gradient).
        self.captures = False
        self._keep: list = []
        # For `concrete`, kept as statements are recorded: each variable's producing statement
        # (its index in `stmts`), and the variables that depend on an input (never concrete).
        self._producer: dict[Var, int] = {}
        self._from_input: set[Var] = set()
        self._const_value: dict[Var, object] = {}

    def __enter__(self) -> "Trace":
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _stack().remove(self)

    def new_var(self, shape, dtype) -> Var:
        var = Var(self._count, tuple(int(n) for n in shape), np.dtype(dtype))
        self._count += 1
        return var

    def new_input(self, shape, dtype) -> "Tracer":
        var = self.new_var(shape, dtype)
        self.inputs.append(var)
        self._from_input.add(var)
        return Tracer(self, var)

    def const(self, value, key=None) -> Var:
        """A value from outside the trace: an array captured from the user's scope, or a tracer
        of an enclosing trace.  It becomes a kernel argument, never a copy in the code.  `key`
        is the object it was read as, when `value` is a view of it (of an ndarray subclass)."""
        key = value if key is None else key
        var = self._const_ids.get(id(key))
        if var is None:
            var = self.new_var(value.shape, value.dtype)
            self._const_ids[id(key)] = var
            self.consts.append(var)
            self.const_values.append(value)
            self._const_value[var] = value
            self._keep.append(key)  # keeps id(key) from being reused
        return var

    def concrete(self, var: Var):
        """The value of `var` if it depends on constants only (arrays read from the user's scope,
        literals), else None.  The arrays it depends on are watched by content from now on, so a
        kernel that folded them is traced again when they change."""
        if var in self._from_input:
            return None
        needed, stack, consts = {}, [var], self._const_value
        while stack:
            v = stack.pop()
            if v in needed or isinstance(v, Lit):
                continue
            if v in consts:
                if not isinstance(consts[v], np.ndarray) or any(
                        d[3] is consts[v] for trace in _stack() for d in trace.draws or ()):
                    return None  # a tracer of an enclosing trace, or a random draw
                needed[v] = None
                continue
            index = self._producer.get(v)
            if index is None:
                return None  # an input
            stmt = self.stmts[index]
            for out in stmt.outs:
                needed[out] = index
            stack.extend(stmt.inputs)
        from .watch import watch_content
        env = {}
        for v in needed:
            if v in consts:
                watch_content(consts[v])
                env[v] = consts[v]
        order = [self.stmts[i] for i in sorted({i for i in needed.values() if i is not None})]
        graph = Graph(tuple(), tuple(env), tuple(order), (var,), self.name)
        from .interpret import evaluate
        with _Suspended():
            return evaluate(graph, [], list(env.values()))[0]

    def emit(self, prim: Prim, inputs: tuple, params: dict) -> Var:
        (out,) = self.emit_multi(prim, inputs, params)
        return out

    def emit_multi(self, prim: Prim, inputs: tuple, params: dict) -> tuple[Var, ...]:
        try:
            types = infer(prim, inputs, params)
        except ShapeError as e:
            raise ShapeError(f"{e} (at {user_frame()})") from None
        outs = tuple(self.new_var(shape, dtype) for shape, dtype in types)
        index = len(self.stmts)
        self.stmts.append(Stmt(prim, inputs, outs, params))
        from_input = any(v in self._from_input for v in inputs if isinstance(v, Var))
        for out in outs:
            self._producer[out] = index
            if from_input:
                self._from_input.add(out)
        return outs

    def finish(self, outputs) -> Graph:
        # Outputs first: an output captured from outside the trace adds a constant.
        atoms = tuple(self.atom(o) for o in outputs)
        return Graph(tuple(self.inputs), tuple(self.consts), tuple(self.stmts), atoms, self.name)

    def atom(self, value):
        if isinstance(value, Tracer) and value._trace is self:
            return value._var
        if isinstance(value, (bool, int, float, complex, np.generic)) or (
            isinstance(value, np.ndarray) and value.ndim == 0
        ):
            item = np.asarray(value)
            if item.dtype.kind not in "biufc":
                raise ArgumentError(f"jitgrad cannot trace a value of type {item.dtype}")
            return Lit(item.item(), item.dtype if isinstance(value, (np.generic, np.ndarray))
                       else np.result_type(item.item()))
        if isinstance(value, Tracer) or isinstance(value, np.ndarray):
            if isinstance(value, np.ndarray) and value.dtype.kind not in "biufc":
                raise ArgumentError(f"jitgrad cannot use an array of dtype {value.dtype} "
                                    f"in traced code")
            return self.const(value)
        if isinstance(value, (list, tuple)):
            arr = np.asarray(value)
            if arr.dtype.kind in "biufc":
                return self.const(arr)
            raise TracingError(f"a list or tuple that holds traced values cannot be used as an "
                               f"array yet (at {user_frame()})")
        raise TracingError(f"jitgrad cannot use a {type(value).__name__} as an operand "
                           f"(at {user_frame()})")


def _stack() -> list:
    try:
        return _LOCAL.traces
    except AttributeError:
        _LOCAL.traces = []
        return _LOCAL.traces


def active_traces() -> list:
    """The traces active in this thread, innermost last."""
    return _stack()


class _Suspended:
    """No trace is active inside: evaluates with NumPy even while a function is traced."""

    def __enter__(self):
        self.saved, _LOCAL.traces = _stack(), []

    def __exit__(self, *exc):
        _LOCAL.traces = self.saved


def current_trace(args) -> Trace | None:
    """The innermost active trace that owns one of `args`, if any."""
    owners = {id(a._trace) for a in args if isinstance(a, Tracer)}
    if not owners:
        return None
    stack = _stack()
    for trace in reversed(stack):
        if id(trace) in owners:
            return stack[-1] if stack[-1].captures else trace
    return None


def _no_lists_of_tracers(prim: Prim, args) -> None:
    for a in args:
        if isinstance(a, (list, tuple)) and any(isinstance(x, Tracer) for x in a):
            raise TracingError(
                f"a {type(a).__name__} of traced values was given to {prim.name} (at "
                f"{user_frame()}), which needs an array: jitgrad cannot make arrays from lists of "
                f"traced values yet. To differentiate with respect to a list of numbers, pass "
                f"an array instead (numpy.array(the_list)).")


def bind(prim: Prim, *args, **params):
    trace = current_trace(args)
    if trace is None:
        _no_lists_of_tracers(prim, args)
        values = [a._value() if isinstance(a, Tracer) else a for a in args]
        return apply_numpy(prim, values, params)
    return Tracer(trace, trace.emit(prim, tuple(trace.atom(a) for a in args), params))


def bind_multi(prim: Prim, *args, **params) -> tuple:
    """`bind` for statements with several results (control flow): returns a tuple."""
    trace = current_trace(args)
    if trace is None:
        values = [a._value() if isinstance(a, Tracer) else a for a in args]
        return tuple(apply_numpy(prim, values, params))
    outs = trace.emit_multi(prim, tuple(trace.atom(a) for a in args), params)
    return tuple(Tracer(trace, v) for v in outs)


def innermost_trace() -> Trace | None:
    traces = _stack()
    return traces[-1] if traces else None


def full(shape, value, dtype):
    """An array filled with `value`: a statement of the innermost active trace, if any."""
    trace = innermost_trace()
    if trace is None:
        return np.full(shape, value, dtype)
    params = {"shape": tuple(shape), "value": value, "dtype": np.dtype(dtype)}
    return Tracer(trace, trace.emit(Prim.full, (), params))


def _user_frame_object():
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def user_frame() -> str:
    """`file:line` of the innermost stack frame outside jitgrad, for error messages."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class Tracer:
    """Stands for an array while a function is traced.  Operators and methods build IR."""

    __slots__ = ("_trace", "_var")
    __array_priority__ = 1000

    def __init__(self, trace: Trace, var: Var):
        self._trace = trace
        self._var = var

    # --- array attributes ---------------------------------------------------------------------
    shape = property(lambda self: self._var.shape)
    dtype = property(lambda self: self._var.dtype)
    ndim = property(lambda self: self._var.ndim)
    size = property(lambda self: self._var.size)
    T = property(lambda self: _np().transpose(self))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Tracer({self._var.name}:{self._var.type_str()})"

    def _value(self):
        raise TracingError(f"a traced value escaped its trace (at {user_frame()}): do not store "
                           f"traced values in globals or reuse them in a later call")

    # --- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other): return _np().add(self, other)
    def __radd__(self, other): return _np().add(other, self)
    def __sub__(self, other): return _np().subtract(self, other)
    def __rsub__(self, other): return _np().subtract(other, self)
    def __mul__(self, other): return _np().multiply(self, other)
    def __rmul__(self, other): return _np().multiply(other, self)
    def __truediv__(self, other): return _np().divide(self, other)
    def __rtruediv__(self, other): return _np().divide(other, self)
    def __pow__(self, other): return _np().power(self, other)
    def __rpow__(self, other): return _np().power(other, self)
    def __and__(self, other): return _logical("logical_and", "&", self, other)
    def __rand__(self, other): return _logical("logical_and", "&", other, self)
    def __or__(self, other): return _logical("logical_or", "|", self, other)
    def __ror__(self, other): return _logical("logical_or", "|", other, self)
    def __xor__(self, other): return _logical("logical_xor", "^", self, other)
    def __rxor__(self, other): return _logical("logical_xor", "^", other, self)
    def __invert__(self): return _logical("logical_not", "~", self)
    def __mod__(self, other): return _np().mod(self, other)
    def __rmod__(self, other): return _np().mod(other, self)
    def __floordiv__(self, other): return _np().floor_divide(self, other)
    def __rfloordiv__(self, other): return _np().floor_divide(other, self)
    def __matmul__(self, other): return _np().matmul(self, other)
    def __rmatmul__(self, other): return _np().matmul(other, self)
    def __neg__(self): return _np().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _np().abs(self)
    def __lt__(self, other): return _np().less(self, other)
    def __le__(self, other): return _np().less_equal(self, other)
    def __gt__(self, other): return _np().greater(self, other)
    def __ge__(self, other): return _np().greater_equal(self, other)
    def __eq__(self, other): return _np().equal(self, other)  # noqa: E704
    def __ne__(self, other): return _np().not_equal(self, other)  # noqa: E704
    __hash__ = object.__hash__

    # --- methods that mirror ndarray's --------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return _np().sum(self, axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return _np().mean(self, axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _np().max(self, axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return _np().min(self, axis, keepdims=keepdims)
    def dot(self, other): return _np().dot(self, other)
    def transpose(self, *axes):
        return _np().transpose(self, axes[0] if len(axes) == 1 else axes or None)

    def reshape(self, *shape, order="C"):
        return _np().reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def __getitem__(self, index):
        return _np()._getitem(self, index)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else bind(Prim.convert, self, dtype=dtype)

    def item(self, *index):
        if index or self.size != 1:
            return self[index if len(index) != 1 else index[0]].item() if index else \
                self._concrete(f"x.item() of an array of {self.size} elements")
        return self._known_or("x.item()").item()

    real = property(lambda self: _np().real(self))
    imag = property(lambda self: _np().imag(self))

    def __getattr__(self, name):
        # ndarray's methods, as the jitgrad.numpy functions of the same names.
        if name in _METHODS:
            return functools.partial(getattr(_np(), _METHODS[name]), self)
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(
            f"ndarray.{name} (`x.{name}` on a traced array, at {user_frame()}) is not supported "
            f"by jitgrad; docs/numpy.md lists the methods and functions it supports.")

    # --- what cannot be traced ----------------------------------------------------------------
    def __setitem__(self, index, value):
        raise TracingError(
            f"in-place assignment into a traced array (`x[...] = value`, at {user_frame()}) is "
            f"not supported: jitgrad differentiates pure functions. Build a new array instead, "
            f"for example `x = np.where(mask, value, x)`.")

    def _concrete(self, what: str):
        where = user_frame()
        from .convert import UNCONVERTED, not_converted_code_reason

        file, _, line = where.rpartition(":")
        reason = UNCONVERTED.get((file, int(line))) if line.isdigit() else None
        because = (f"jitgrad compiles `if`, `while` and `for` statements on traced values, but "
                   f"not this one: it contains {reason}. " if reason else "")
        frame = _user_frame_object()
        unconverted = frame and not_converted_code_reason(frame.f_code)
        if unconverted:
            because = (f"jitgrad could not convert the control flow of {frame.f_code.co_name}: "
                       f"{unconverted}. ")
        raise TracingError(
            f"{what} of a traced value (at {where}): the value is not known while jitgrad "
            f"traces the function. {because}Write the loop or branch with jitgrad.while_loop, "
            f"jitgrad.fori_loop or jitgrad.cond, or the choice with np.where(condition, a, b), "
            f"or pass the value as a non-differentiated argument.")

    def _known(self):
        """The value, if it depends only on arrays read from the user's scope (watched by
        content from then on, see Trace.concrete), else None."""
        if self._trace not in _stack():
            return None
        return self._trace.concrete(self._var)

    def _known_or(self, what: str):
        value = self._known()
        if value is None:
            self._concrete(what)
        return value

    def __bool__(self):
        return bool(self._known_or("the truth value (bool(), `if`, `while`, `and`/`or`)"))

    def __float__(self): return float(self._known_or("float()"))
    def __int__(self): return int(self._known_or("int()"))
    def __index__(self): return operator.index(self._known_or("use as an index"))
    def __complex__(self): return complex(self._known_or("complex()"))

    def __array__(self, dtype=None, copy=None):
        value = self._known()
        if value is None:
            raise TracingError(
                f"a traced value was converted to a NumPy array (at {user_frame()}): inside a "
                f"function that jitgrad differentiates, use `import jitgrad.numpy as np` instead "
                f"of NumPy itself.")
        return np.asarray(value, dtype=dtype)

    # NumPy's own functions and ufuncs, called on a tracer, are routed to jitgrad.numpy; those it
    # does not trace run on the values, when they are known (see `_known`).
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = getattr(_np(), ufunc.__name__, None)
        if method != "__call__" or kwargs or fn is None or not callable(fn):
            known = _known_values(inputs)
            if known is not None:
                return getattr(ufunc, method)(*known, **kwargs)
            raise TracingError(
                f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} was "
                f"called on a traced value (at {user_frame()}) and jitgrad does not support it; "
                f"see jitgrad.numpy.SUPPORTED for what it does.")
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        from .ops import REGISTRY

        module = getattr(func, "__module__", None) or "numpy"
        fn = REGISTRY.get(module, {}).get(func.__name__)
        if fn is None:
            known = _known_values(args)
            if known is not None:
                return func(*known, **kwargs)
            raise TracingError(
                f"{module}.{func.__name__} was called on a traced value (at {user_frame()}) and "
                f"jitgrad does not support it yet; docs/numpy.md lists what it supports.")
        return fn(*args, **kwargs)


# ndarray methods that are the jitgrad.numpy function of the same (or the given) name.
_METHODS = {name: name for name in (
    "prod", "var", "std", "ravel", "clip", "squeeze", "swapaxes", "cumsum", "cumprod", "argmax",
    "argmin", "all", "any", "round", "conj", "conjugate", "repeat", "take", "trace", "diagonal",
    "ptp", "nonzero", "argsort", "searchsorted", "flatten", "choose", "compress",
)}


class UnsupportedAttribute(TracingError, AttributeError):
    """An ndarray attribute or method that traced arrays do not have (`hasattr` is False)."""


def _logical(name: str, symbol: str, *operands):
    """`&`, `|`, `^`, `~` of boolean masks; on integers they would be bitwise, which jitgrad
    does not trace."""
    for x in operands:
        kind = x.dtype.kind if isinstance(x, Tracer) else np.result_type(x).kind
        if kind != "b":
            raise TracingError(f"`{symbol}` of a traced value of dtype "
                               f"{getattr(x, 'dtype', type(x).__name__)} (at {user_frame()}): "
                               f"jitgrad traces `{symbol}` of boolean masks only (np.{name})")
    return getattr(_np(), name)(*operands)


def _np():
    return sys.modules["jitgrad.numpy"]


def _known_values(args):
    """`args` with every tracer replaced by its known value (see Tracer._known), or None."""
    out = []
    for a in args:
        if isinstance(a, Tracer):
            a = a._known()
            if a is None:
                return None
        elif isinstance(a, (list, tuple)) and any(isinstance(x, Tracer) for x in a):
            a = _known_values(a)
            if a is None:
                return None
        out.append(a)
    return out


# ------------------------------------------------------------------------------------------------
# Argument structures: tuples, lists, dicts (and namedtuples) of leaves
# ------------------------------------------------------------------------------------------------


def flatten(obj, leaves: list) -> object:
    """Append the leaves of `obj` to `leaves` and return a hashable description of its structure."""
    t = type(obj)
    if t is tuple or t is list:
        return (t, tuple(flatten(c, leaves) for c in obj))
    if t is dict:
        return (dict, tuple(obj), tuple(flatten(obj[k], leaves) for k in obj))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (t, tuple(flatten(c, leaves) for c in obj))
    leaves.append(obj)
    return None


def unflatten(tree, leaves):
    """Inverse of `flatten`; `leaves` is an iterator."""
    if tree is None:
        return next(leaves)
    t = tree[0]
    if t is dict:
        return {k: unflatten(c, leaves) for k, c in zip(tree[1], tree[2])}
    children = [unflatten(c, leaves) for c in tree[1]]
    if t is tuple or t is list:
        return t(children)
    return t(*children)


def float_leaf(value, where: str):
    """A differentiated leaf as a float64 value, or a clear error."""
    if isinstance(value, Tracer):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{where} is a bool; jitgrad differentiates with respect to floats")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, (complex, np.complexfloating)):
        return complex(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":
            return complex(value) if value.ndim == 0 else np.asarray(value)
        if value.dtype.kind in "iuf":
            if value.ndim == 0:
                return float(value)  # kernels take every 0-d value as a scalar
            # A subclass (memmap, matrix, ...) is differentiated as its data, as NumPy's own
            # functions treat it; it never reaches a kernel or a cache key as itself.  float32
            # stays float32 (its kernel computes in float32); integers become float64.
            dtype = value.dtype if value.dtype.kind == "f" and value.itemsize <= 8 else FLOAT
            return np.asarray(value, dtype=dtype)
        raise ArgumentError(f"{where} is an array of dtype {value.dtype}; jitgrad "
                            f"differentiates with respect to float and complex arrays")
    raise ArgumentError(f"{where} is a {type(value).__name__}; jitgrad differentiates with "
                        f"respect to floats, complex numbers, arrays of them, and "
                        f"tuples/lists/dicts of them")
