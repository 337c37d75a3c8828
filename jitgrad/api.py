"""The user-facing API, with autograd's signatures: `grad`, `value_and_grad`, `jit_grad`, and
`explain` to see the IR and the generated kernel.

A call looks up the kernel for its input signature (shapes, dtypes, argument structure, and the
values of non-array arguments) and calls it; only a new signature traces, differentiates and
compiles.  The lookup is the only Python between the user and the kernel, so it is kept thin.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import numpy as np

from . import ad, codegen, compile, fuse
from .errors import ArgumentError, TracingError
from .interpret import evaluate
from .ir import Graph, verify
from .trace import Trace, Tracer, flatten, float_leaf, unflatten

_ndarray = np.ndarray
_FLOAT = np.dtype(np.float64)


# ------------------------------------------------------------------------------------------------
# Public functions
# ------------------------------------------------------------------------------------------------


def grad(fun, argnum=0):
    """The gradient of `fun` with respect to positional argument `argnum` (an int or a tuple).

    `fun` must return a scalar.  The gradient has the structure of the argument: an array for an
    array, a float for a float, a tuple/list/dict of them for a tuple/list/dict.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import grad
    >>> grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    return _GradFunction(fun, argnum, with_value=False).function()


def value_and_grad(fun, argnum=0):
    """Like `grad`, but returns `(fun(*args), gradient)`; both come from one kernel call.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import value_and_grad
    >>> value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    (5.0, array([2., 4.]))
    """
    return _GradFunction(fun, argnum, with_value=True).function()


def jit_grad(fun=None, *, argnum=0):
    """Decorator form of `grad`: `@jit_grad` or `@jit_grad(argnum=1)`.

    >>> import jitgrad.numpy as np
    >>> @jit_grad
    ... def loss(w):
    ...     return np.sum(np.tanh(w))
    >>> float(loss(np.zeros(3))[0])
    1.0
    """
    if fun is None:
        return lambda f: grad(f, argnum)
    return grad(fun, argnum)


@dataclass
class Explanation:
    """What jitgrad makes of a function at one signature."""

    ir: Graph  # the traced function
    grad_ir: Graph  # value and gradient, after the reverse-mode transform
    source: str  # the generated Numba kernel
    path: str  # where that source lives

    def __str__(self) -> str:
        return (f"# traced IR\n{self.ir}\n\n# value and gradient IR\n{self.grad_ir}\n\n"
                f"# generated kernel ({self.path})\n{self.source}")


def explain(fun, *args, argnum=0, **kwargs) -> Explanation:
    """The IR of `fun` at these arguments, its gradient's IR, and the generated kernel source.

    >>> import jitgrad.numpy as np
    >>> print(explain(lambda x: np.sum(np.sin(x)), np.ones(3)).ir)
    def <lambda>(x0:f64[3]):
      x1:f64[3] = sin x0
      x2:f64[] = reduce_sum[axes=(0,), keepdims=False] x1
      return x2
    """
    gf = _GradFunction(fun, argnum, with_value=True)
    key, _, _ = gf._signature(args, kwargs)
    build = gf._build(args, kwargs, key)
    compile.load(build.source)  # writes the file (Numba compiles on a first call, not here)
    return Explanation(build.graph, build.grad_graph, build.source,
                       compile.kernel_path(build.source))


# ------------------------------------------------------------------------------------------------
# The machinery
# ------------------------------------------------------------------------------------------------


@dataclass
class _Build:
    graph: Graph
    grad_graph: Graph
    consts: list
    source: str


class _Entry:
    """A compiled kernel for one signature, with what it needs at every call."""

    __slots__ = ("kernel", "consts", "current", "compiled")

    def __init__(self, kernel, consts, current):
        self.kernel, self.consts = kernel, tuple(consts)
        # None, or a function saying whether the globals and closure variables the function read
        # when traced still hold the same objects.  (An array changed in place is fine: kernels
        # read it at every call.)
        self.current = current
        self.compiled = False


def _guard(fun):
    """A check that the globals and closure cells `fun` reads still hold what they hold now,
    compiled into one expression because it runs on every call."""
    code = getattr(fun, "__code__", None)
    namespace = getattr(fun, "__globals__", None)
    if code is None or namespace is None:
        return None
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    env, terms = {"_g": namespace, "_missing": _MISSING}, []
    for i, name in enumerate(sorted(n for n in names if n in namespace)):
        env[f"_v{i}"] = namespace[name]
        terms.append(f"_g.get({name!r}, _missing) is _v{i}")
    for i, cell in enumerate(fun.__closure__ or ()):
        try:
            env[f"_c{i}"], env[f"_w{i}"] = cell, cell.cell_contents
        except ValueError:  # an empty cell
            continue
        terms.append(f"_c{i}.cell_contents is _w{i}")
    if not terms:
        return None
    return eval("lambda: " + " and ".join(terms), env)  # noqa: S307 (built from names only)


_MISSING = object()
# Per function: argnums -> {signature: _Entry}, shared by grad and value_and_grad of it.
_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_UNCACHEABLE: dict = {}


class _GradFunction:
    def __init__(self, fun, argnum, with_value: bool):
        if not callable(fun):
            raise ArgumentError(f"grad: expected a function, got {type(fun).__name__}")
        self.fun, self.argnum, self.with_value = fun, argnum, with_value
        if isinstance(argnum, (tuple, list)):
            self.argnums = tuple(argnum)
        else:
            self.argnums = (argnum,)
        for a in self.argnums:
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise ArgumentError(f"grad: argnum must be an int or a tuple of ints, got {argnum!r}")
        self.name = getattr(fun, "__name__", type(fun).__name__)
        try:
            per_fun = _CACHES.setdefault(fun, {})
        except TypeError:  # not weak-referenceable: keep per wrapper
            per_fun = _UNCACHEABLE.setdefault(id(self), {})
        self._entries, self._fast = per_fun.setdefault(self.argnums, ({}, {}))
        self._fast_ok = self.argnums == (0,)

    def __repr__(self) -> str:
        kind = "value_and_grad" if self.with_value else "grad"
        return f"<jitgrad {kind} of {self.name}, argnum={self.argnum}>"

    def function(self):
        """The callable handed to the user.  A closure, because the hot path (one float64 array,
        differentiated, with a kernel for its shape) must cost as little Python as possible."""
        fast, slow, with_value = self._fast, self._call, self.with_value
        ndarray, float64 = _ndarray, _FLOAT

        if not self._fast_ok:
            def call(*args, **kwargs):
                return slow(args, kwargs)
        elif with_value:
            def call(*args, **kwargs):
                if len(args) == 1 and not kwargs:
                    x = args[0]
                    if type(x) is ndarray:
                        entry = fast.get(x.shape)
                        if entry is not None and x.dtype is float64 and (
                                entry.current is None or entry.current()):
                            return entry.kernel(x, *entry.consts)
                return slow(args, kwargs)
        else:
            def call(*args, **kwargs):
                if len(args) == 1 and not kwargs:
                    x = args[0]
                    if type(x) is ndarray:
                        entry = fast.get(x.shape)
                        if entry is not None and x.dtype is float64 and (
                                entry.current is None or entry.current()):
                            return entry.kernel(x, *entry.consts)[1]
                return slow(args, kwargs)

        functools.update_wrapper(call, self.fun)
        call._jitgrad = self
        return call

    # --- signatures ---------------------------------------------------------------------------
    def _signature(self, args, kwargs):
        """(hashable key, leaves passed to the kernel, structures of the differentiated args)."""
        n = len(args)
        for a in self.argnums:
            if not -n <= a < n:
                raise ArgumentError(f"grad of {self.name}: argnum {a} is out of range: "
                                    f"{self.name} was called with {n} positional argument"
                                    f"{'' if n == 1 else 's'}")
        diff = {a % n for a in self.argnums}
        key, dynamic, trees = [], [], []
        for i, arg in enumerate(args):
            leaves: list = []
            tree = flatten(arg, leaves)
            if i in diff:
                where = f"argument {i} of {self.name}"
                leaves = [float_leaf(leaf, where) for leaf in leaves]
                key.append((tree, tuple(_leaf_key(leaf) for leaf in leaves)))
                dynamic.extend(leaves)
                trees.append((tree, len(leaves), [_out_kind(a) for a in _leaves_of(arg)]))
            else:
                key.append((tree, tuple(_static_key(leaf, dynamic, i, self.name)
                                        for leaf in leaves)))
        for name in sorted(kwargs):
            leaves = []
            tree = flatten(kwargs[name], leaves)
            key.append((name, tree, tuple(_static_key(leaf, dynamic, name, self.name)
                                          for leaf in leaves)))
        return tuple(key), dynamic, trees

    # --- calls --------------------------------------------------------------------------------
    def _call(self, args, kwargs):
        key, dynamic, trees = self._signature(args, kwargs)
        if any(isinstance(leaf, Tracer) for leaf in dynamic):
            return self._call_traced(args, kwargs, key, dynamic, trees)
        entry = self._entries.get(key)
        if entry is None or not (entry.current is None or entry.current()):
            entry = self._compile(args, kwargs, key)
        call_args = (*dynamic, *entry.consts)
        if entry.compiled:
            out = entry.kernel(*call_args)
        else:
            out = compile.first_call(entry.kernel, call_args)
            entry.compiled = True
        return self._package(out, trees)

    def _package(self, out, trees):
        value, flat = out[0], iter(out[1:])
        grads = []
        for tree, count, kinds in trees:
            leaves = [_restore(next(flat), kind) for kind in kinds]
            grads.append(unflatten(tree, iter(leaves)))
        g = tuple(grads) if isinstance(self.argnum, (tuple, list)) else grads[0]
        return (value, g) if self.with_value else g

    def _compile(self, args, kwargs, key) -> _Entry:
        build = self._build(args, kwargs, key)
        kernel = compile.load(build.source)
        entry = _Entry(kernel, build.consts, _guard(self.fun))
        self._entries[key] = entry
        if self._fast_ok and len(args) == 1 and not kwargs and type(args[0]) is _ndarray \
                and args[0].dtype == _FLOAT and args[0].ndim > 0:
            self._fast[args[0].shape] = entry
        return entry

    def _build(self, args, kwargs, key) -> _Build:
        graph, consts, wrt = self._trace(args, kwargs)
        grad_graph, grad_consts = ad.value_and_grad_graph(graph, consts, wrt)
        grad_graph = verify(fuse.dce(grad_graph))
        kind = "value and gradient" if self.with_value else "gradient"
        note = f"{kind} of {self.name} with respect to argnum={self.argnum}"
        source = codegen.generate(fuse.schedule(grad_graph), note=note)
        return _Build(graph, grad_graph, grad_consts, source)

    def _trace(self, args, kwargs):
        """Run the function on tracers: (graph, constant values, indices of graph inputs to
        differentiate)."""
        n = len(args)
        diff = {a % n for a in self.argnums}
        trace = Trace(self.name)
        wrt = []
        with trace:
            def lift(leaf, differentiated, where):
                if differentiated:
                    leaf = float_leaf(leaf, where)
                    wrt.append(len(trace.inputs))
                    return trace.new_input(getattr(leaf, "shape", ()), np.float64)
                if isinstance(leaf, (_ndarray, Tracer)):
                    return trace.new_input(leaf.shape, leaf.dtype)
                return leaf

            traced_args = []
            for i, arg in enumerate(args):
                leaves: list = []
                tree = flatten(arg, leaves)
                where = f"argument {i} of {self.name}"
                traced_args.append(unflatten(tree, iter([lift(x, i in diff, where)
                                                         for x in leaves])))
            traced_kwargs = {}
            for name in sorted(kwargs):
                leaves = []
                tree = flatten(kwargs[name], leaves)
                traced_kwargs[name] = unflatten(tree, iter([lift(x, False, name) for x in leaves]))
            out = self.fun(*traced_args, **traced_kwargs)
            _check_scalar(out, self.name)
            graph = trace.finish([out])
        verify(graph)
        return graph, trace.const_values, tuple(wrt)

    def _call_traced(self, args, kwargs, key, dynamic, trees):
        """Called inside another trace (grad of grad): inline the gradient's IR there."""
        build = self._build(args, kwargs, key)
        out = evaluate(build.grad_graph, dynamic, build.consts)
        return self._package(out, trees)


def _check_scalar(out, name: str) -> None:
    if isinstance(out, Tracer):
        if out.size != 1:
            raise TracingError(f"grad of {name}: {name} must return a scalar, but it returned an "
                               f"array of shape {out.shape}")
        if out.dtype.kind not in "biuf":
            raise TracingError(f"grad of {name}: {name} returned a value of dtype {out.dtype}")
        return
    if isinstance(out, (bool, int, float, np.number)) or (
            isinstance(out, np.ndarray) and out.size == 1):
        return
    shape = getattr(out, "shape", None)
    what = f"an array of shape {shape}" if shape is not None else f"a {type(out).__name__}"
    raise TracingError(f"grad of {name}: {name} must return a scalar, but it returned {what}")


def _leaves_of(arg) -> list:
    leaves: list = []
    flatten(arg, leaves)
    return leaves


def _leaf_key(leaf):
    if type(leaf) is _ndarray or isinstance(leaf, Tracer):
        return (leaf.shape, leaf.dtype)
    return float


def _out_kind(leaf):
    """How to hand a leaf's gradient back: as a float for a Python number, else as an array of
    the argument's float dtype (float64 for integer arrays)."""
    if isinstance(leaf, (_ndarray, np.generic)):
        dt = leaf.dtype if leaf.dtype.kind == "f" else _FLOAT
        return ("array", dt, np.ndim(leaf))
    return ("float", None, 0)


def _restore(value, kind):
    form, dtype, ndim = kind
    if isinstance(value, Tracer):
        return value
    if form == "float":
        return float(value)
    if ndim == 0:
        return np.asarray(value, dtype=dtype)[()]
    return value if value.dtype == dtype else value.astype(dtype)


def _static_key(leaf, dynamic: list, where, fname: str):
    """Key part of a non-differentiated leaf: arrays are kernel inputs (keyed by shape and
    dtype), anything else is baked into the trace (keyed by value)."""
    if isinstance(leaf, (_ndarray, Tracer)):
        dynamic.append(leaf[()] if leaf.ndim == 0 else leaf)  # kernels take 0-d as scalars
        return ("array", leaf.shape, leaf.dtype)
    try:
        hash(leaf)
    except TypeError:
        raise ArgumentError(f"argument {where} of {fname} is a {type(leaf).__name__}, which "
                            f"jitgrad can neither trace nor use as a cache key") from None
    return ("static", type(leaf), leaf)
