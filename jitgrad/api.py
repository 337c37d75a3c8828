"""The user-facing API, with autograd's signatures: `grad`, `value_and_grad`, `jit_grad`, and
`explain` to see the IR and the generated kernel.

A call looks up the kernel for its input signature (shapes, dtypes, argument structure, and the
values of non-array arguments) and calls it; only a new signature traces, differentiates and
compiles.  The lookup is the only Python between the user and the kernel, so it is kept thin.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import copy
import functools
import math
import os
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from . import _jit, ad, codegen, compile, compile_worker, forward, fuse, watch
from .errors import ArgumentError, JitgradInternalError, JitgradWarning, TracingError
from .interpret import Staged, evaluate, last_uses
from .ir import Graph, Lit, verify
from .primitives import Prim
from .control import Made, converted_call
from .trace import Trace, Tracer, flatten, float_leaf, unflatten, user_frame

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


def holomorphic_grad(fun, argnum=0):
    """autograd's `holomorphic_grad`: the complex derivative f'(z) of a holomorphic function of
    complex arguments, returning a complex scalar.

    >>> holomorphic_grad(lambda z: z ** 2)(1.0 + 1.0j)
    (2+2j)
    """
    impl = _GradFunction(fun, argnum, with_value=False, kind="holomorphic")
    call, real = impl.function(), grad(fun, argnum)

    @functools.wraps(fun)
    def derivative(*args, **kwargs):
        for a in impl.argnums:
            if not all(np.iscomplexobj(x) for x in _leaves_of(args[a])):
                # autograd warns and goes on: for a real argument it is the gradient.
                _warn_once(impl.name, f"holomorphic_grad of a real argument {a}: its "
                           f"derivative is the gradient (use grad)")
                return real(*args, **kwargs)
        return call(*args, **kwargs)

    return derivative


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


def jit(fun):
    """`fun` compiled as it is, without derivatives: traced once per input signature (as `grad`
    keys it: shapes, dtypes, argument structure, values of non-array arguments), fused and
    compiled into one kernel, cached and reused like a gradient's.  It returns what `fun`
    returns: arrays and numbers, in tuples, lists and dicts.  For an objective's time next to
    its gradient's, or a model's forward pass.

    >>> import jitgrad.numpy as np
    >>> f = jit(lambda x, y: (np.sum(np.sin(x) * y), x * 2.0))
    >>> f(np.array([0.0, 1.0]), 2.0)
    (1.682941969615793, array([0., 2.]))
    """
    return _GradFunction(fun, (), with_value=False, kind="value", api="jit").function()


def make_vjp(fun, argnum=0):
    """autograd's `make_vjp`: `make_vjp(f, argnum)(*args)` returns `(vjp, f(*args))`, where
    `vjp(g)` is the vector-Jacobian product for an output cotangent `g` (compiled once per
    signature; every `vjp` call runs the kernel).

    >>> import jitgrad.numpy as np
    >>> vjp, ans = make_vjp(lambda x: np.sin(x))(np.array([0.0, 1.0]))
    >>> vjp(np.array([1.0, 2.0]))
    array([1.        , 1.08060461])
    """
    impl = _GradFunction(fun, argnum, with_value=True, kind="vjp")

    def maker(*args, **kwargs):
        return impl.make_vjp(args, kwargs)

    return functools.update_wrapper(maker, fun)


def elementwise_grad(fun, argnum=0):
    """autograd's `elementwise_grad`: the sum of each column of the Jacobian, i.e. the gradient
    of `sum(fun(*args))`; the derivative of each element for elementwise functions.

    >>> import jitgrad.numpy as np
    >>> elementwise_grad(np.tanh)(np.array([0.0, 1.0]))
    array([1.        , 0.41997434])
    """
    from . import numpy as jnp

    def summed(*args, **kwargs):
        leaves: list = []
        flatten(converted_call(fun, *args, **kwargs), leaves)  # a tree of outputs: all of them
        total = jnp.sum(leaves[0])
        for leaf in leaves[1:]:
            total = total + jnp.sum(leaf)
        return total

    return grad(functools.update_wrapper(summed, fun), argnum)


def jacobian(fun, argnum=0):
    """autograd's `jacobian`: the array of shape `out.shape + x.shape` of partial derivatives.
    By rows: one compiled kernel runs the forward pass once and then, in a loop, the
    vector-Jacobian product of every output element (the adjoint only: the forward values are
    computed once, before the loop), as JAX's jacrev.  When the argument has fewer elements
    than the output, by columns instead: one kernel, the values once and then a loop of
    forward-mode tangents, one per input element (see `make_jvp`), as jacfwd.  A function
    returning a tuple/list/dict gives a tuple/list/dict of Jacobians.  Inside a traced
    function (a gradient of a Jacobian), the rows' loop is part of the enclosing kernel.

    >>> import jitgrad.numpy as np
    >>> jacobian(lambda x: x ** 2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """
    return _jacobian(fun, argnum, "jacobian", by=None)


def _jacobian(fun, argnum, name: str, by):
    if not isinstance(argnum, (int, np.integer)):
        raise ArgumentError(f"{name}: argnum must be an int")
    # The kernels live with the user's function, even when `fun` is a gradient made afresh at
    # each call (`jacobian(grad(f))`, `hessian(f)` in every step of a Newton loop).
    inner = getattr(fun, "_jitgrad", None)
    if isinstance(inner, _GradFunction):
        owner, tag = inner.fun, ("jacobian of", inner.kind, inner.argnums, inner.with_value)
    else:
        owner, tag = fun, "jacobian"
    return _make_jacobian(fun, int(argnum), owner, tag, by)


def _make_jacobian(fun, argnum, owner, tag, by=None):
    """The Jacobian of `fun`, with its kernels and output shapes cached under `owner` and
    `tag` (the cache never holds `owner` itself).  `by`: "rows" or "columns" whatever the
    shapes (None: by the shapes)."""
    make = make_vjp(fun, argnum)
    structure = _GradFunction(fun, argnum, with_value=True, kind="vjp")
    try:
        shapes_seen = _CACHES.setdefault(owner, {}).setdefault((tag, argnum, "shapes"), {})
    except TypeError:
        shapes_seen = {}

    def rows(*args, **kwargs):
        return _jacobian_rows(make, args, kwargs, argnum)

    by_rows = _GradFunction(functools.update_wrapper(rows, fun), argnum, with_value=False,
                            kind="value", cache=(owner, tag)).function()
    tangents = _GradFunction(fun, argnum, with_value=True, kind="jvp")

    def columns(*args, **kwargs):
        return _jacobian_columns(tangents, args, kwargs, argnum)

    by_columns = _GradFunction(functools.update_wrapper(columns, fun), argnum,
                               with_value=False, kind="value",
                               cache=(owner, (tag, "by columns"))).function()

    def jac(*args, **kwargs):
        x = args[argnum] if -len(args) <= argnum < len(args) else None
        if not isinstance(x, (float, int, np.ndarray, np.number, Tracer)):
            return _jacobian_by_vjp_calls(make, args, kwargs, argnum)
        if any(isinstance(leaf, Tracer) for leaf in _leaves_of((args, kwargs))):
            return rows(*args, **kwargs)
        if by is not None:
            return (by_columns if by == "columns" else by_rows)(*args, **kwargs)
        key = (structure._signature(args, kwargs)[0], _EXECUTION.mode)
        if key not in shapes_seen:  # traced once per signature, for the outputs' shapes
            shapes_seen[key] = [tuple(v.shape) for v in structure._trace(args, kwargs)[0].outputs]
        shapes = shapes_seen[key]
        n_in = int(np.prod(np.shape(x), dtype=np.int64))
        n_out = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
        if 0 < n_in < n_out:
            return by_columns(*args, **kwargs)
        return by_rows(*args, **kwargs)

    return functools.update_wrapper(jac, fun)


def _unit(i, n: int, shape):
    """Inside a trace: the array of `shape` (n elements) that is 1 at flat position i (a traced
    loop counter), 0 elsewhere: a Jacobian's seed, made without an identity matrix."""
    from . import numpy as jnp

    return jnp.reshape(jnp.where(np.arange(n) == i, 1.0, 0.0), shape)


def _derivative_dtype(x) -> np.dtype:
    """The dtype of derivatives with respect to `x`: its own if floating, else float64."""
    dtype = np.result_type(x.dtype if isinstance(x, Tracer) else x)
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _jacobian_rows(make, args, kwargs, argnum):
    """The Jacobian inside a trace: a scan over the output elements, each step the VJP of one
    unit cotangent (made in the step from the element's position: no identity matrix)."""
    from . import numpy as jnp
    from .control import emit_scan

    vjp, ans = make(*args, **kwargs)
    outs: list = []
    tree = flatten(ans, outs)
    x = args[argnum]
    in_shape, dtype = tuple(np.shape(x)), _derivative_dtype(x)
    shapes = [tuple(np.shape(o)) for o in outs]
    jacobians = []
    for k, shape in enumerate(shapes):
        m = int(np.prod(shape, dtype=np.int64))
        if m == 0:
            jacobians.append(np.zeros(shape + in_shape, dtype))
            continue

        def row(i, k=k, shape=shape, m=m):
            seeds = [_unit(i, m, shape) if j == k else np.zeros(s) for j, s in enumerate(shapes)]
            return [vjp(unflatten(tree, iter(seeds)))]

        _, (stacked,) = emit_scan(row, [np.arange(m)], m, [], [(in_shape, dtype)],
                                  reverse=False, name="jacobian_row")
        jacobians.append(jnp.reshape(stacked, shape + in_shape))
    return unflatten(tree, iter(jacobians))


def _jacobian_by_vjp_calls(make, args, kwargs, argnum):
    """The Jacobian with respect to a tuple/list/dict argument: one compiled vjp call per
    output element."""
    vjp, ans = make(*args, **kwargs)
    outs: list = []
    tree = flatten(ans, outs)
    if any(isinstance(a, Tracer) for a in outs):
        raise TracingError("jacobian with respect to a tuple/list/dict argument inside a traced "
                           "function is not supported; pass an array")
    in_shape = np.shape(args[argnum])
    shapes = [np.shape(a) for a in outs]
    jacobians = []
    for k, out_shape in enumerate(shapes):  # a tree of outputs: a tree of Jacobians
        rows = []
        for i in range(int(np.prod(out_shape, dtype=np.int64))):
            seeds = [np.zeros(s) if s else 0.0 for s in shapes]
            if out_shape:
                seeds[k].flat[i] = 1.0
            else:
                seeds[k] = 1.0
            rows.append(np.asarray(vjp(unflatten(tree, iter(seeds))), dtype=float))
        jacobians.append(np.reshape(np.array(rows), out_shape + in_shape))
    return unflatten(tree, iter(jacobians))


def _jacobian_columns(tangents, args, kwargs, argnum):
    """The Jacobian inside a trace, by columns: the values once, then a scan over the input
    elements, each step the forward-mode tangent of one unit direction."""
    from . import numpy as jnp
    from .control import emit_scan

    x = args[argnum]
    in_shape, dtype = tuple(np.shape(x)), _derivative_dtype(x)
    n_in = int(np.prod(in_shape, dtype=np.int64))
    run = tangents.jvp_staged(args, kwargs)
    values, _ = run(np.zeros(in_shape, dtype) if in_shape else 0.0)
    outs: list = []
    tree = flatten(values, outs)
    types = [(tuple(np.shape(o)), o.dtype if isinstance(o, Tracer) else np.result_type(o))
             for o in outs]

    def column(j):
        leaves: list = []
        flatten(run(_unit(j, n_in, in_shape).astype(dtype))[1], leaves)
        return leaves

    _, stacked = emit_scan(column, [np.arange(n_in)], n_in, [], types, reverse=False,
                           name="jacobian_column")
    jacobians = []
    for cols, (shape, _) in zip(stacked, types):  # (n_in,) + shape -> shape + in_shape
        moved = jnp.transpose(cols, tuple(range(1, len(shape) + 1)) + (0,))
        jacobians.append(jnp.reshape(moved, shape + in_shape))
    return unflatten(tree, iter(jacobians))


def hessian(fun, argnum=0):
    """autograd's `hessian`: the Jacobian of the gradient, as one compiled kernel, forward over
    reverse (as JAX's hessian, jacfwd of jacrev): the values once, then a loop over the
    argument's elements, each step the tangent of one unit direction carried through the
    gradient's forward and reverse passes.  Where forward mode cannot go (a gradient through a
    compiled loop), reverse over reverse: a loop over the gradient's elements, each step a
    reverse pass through the reverse pass (measured in docs/how-it-works.md).

    >>> import jitgrad.numpy as np
    >>> hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    gradient = grad(fun, argnum)
    by_columns = _jacobian(gradient, argnum, "hessian", by="columns")
    by_rows = _jacobian(gradient, argnum, "hessian", by="rows")
    try:
        memo = _CACHES.setdefault(fun, {})
    except TypeError:
        memo = {}

    def hess(*args, **kwargs):
        if not memo.get(("hessian by rows", argnum)):
            try:
                return by_columns(*args, **kwargs)
            except TracingError:  # forward mode cannot go through it: reverse over reverse
                memo[("hessian by rows", argnum)] = True  # (its own error, if any, below)
        return by_rows(*args, **kwargs)

    return functools.update_wrapper(hess, fun)


def hessian_vector_product(fun, argnum=0):
    """autograd's `hessian_vector_product`: `hvp(*args, v)` is H v, compiled as the gradient of
    `<grad f, v>` (no Hessian is formed).

    >>> import jitgrad.numpy as np
    >>> hvp = hessian_vector_product(lambda x: np.sum(x ** 3))
    >>> hvp(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([ 6., 12.])
    """
    from . import numpy as jnp

    fun_grad = grad(fun, argnum)

    def vector_dot_grad(*args, **kwargs):
        args, vector = args[:-1], args[-1]
        return jnp.sum(fun_grad(*args, **kwargs) * vector)

    return grad(functools.update_wrapper(vector_dot_grad, fun), argnum)


@dataclass
class Explanation:
    """What jitgrad makes of a function at one signature."""

    ir: Graph  # the traced function
    grad_ir: Graph  # value and gradient, after the reverse-mode transform
    source: str  # the generated Numba kernel
    path: str  # where that source lives
    _point: tuple = ()  # (constant values, the inputs' values, differentiated inputs)
    lifted: dict = None  # the kernel's sizes and constants at this signature, by name

    def graph(self, adjoints: bool = True):
        """The traced computation as a graph (jitgrad/graph.py): a graphviz object when the
        graphviz package is installed, else DOT text; for values of one element, each node
        shows its value and, with `adjoints`, its adjoint."""
        from .graph import picture

        consts, dynamic, wrt = self._point
        return picture(self.ir, consts, dynamic, wrt, adjoints, self.ir.name)

    def __str__(self) -> str:
        lifted = ", ".join(f"{k}={v!r}" for k, v in (self.lifted or {}).items())
        return (f"# traced IR\n{self.ir}\n\n# value and gradient IR\n{self.grad_ir}\n\n"
                f"# generated kernel ({self.path})\n{self.source}"
                + (f"\n# lifted, at this signature: {lifted}\n" if lifted else ""))


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
    key, dynamic, _ = gf._signature(args, kwargs)
    build = gf._build(args, kwargs, key)
    compile.load(build.source)  # writes the file (Numba compiles on a first call, not here)
    return Explanation(build.graph, build.grad_graph, build.source,
                       compile.kernel_path(build.source),
                       (build.graph_consts, dynamic, build.wrt), build.lifted)


# ------------------------------------------------------------------------------------------------
# The machinery
# ------------------------------------------------------------------------------------------------


@dataclass
class _Build:
    graph: Graph
    grad_graph: Graph
    consts: list
    source: str
    watches: dict  # what the trace read besides its arguments (watch.py)
    draws: list  # random draws to replay before each call (control._draw)
    out_tree: object = None  # the structure of the output (make_vjp: a tree of arrays)
    graph_consts: list = ()  # the traced graph's constant values (explain's picture)
    wrt: tuple = ()  # the traced graph's differentiated inputs
    lifted: dict = None  # the kernel's sizes and constants by name (codegen.Lifted)
    note: str = ""  # the kernel's header line: what it computes, of what
    too_long: bool = False  # its source passed MAX_KERNEL_LINES (and was not kept)

    def kernel_consts(self) -> list:
        """What the kernel takes after the inputs: the constants, then the lifted numbers (the
        interpreter ignores those)."""
        return [*self.consts, tuple((self.lifted or {}).values())]


@functools.lru_cache(maxsize=64)
def _call1_code(n: int):
    """The code of `lambda x: kernel(x, c0, ..., c<n-1>)` (compiled once per n)."""
    return builtins.compile(f"lambda x: kernel(x, {', '.join(f'c{i}' for i in range(n))})",
                            "<jitgrad call>", "eval")


class _Entry:
    """A compiled kernel for one signature, with what it needs at every call."""

    __slots__ = ("kernel", "consts", "current", "compiled", "out_shapes", "out_tree", "call1",
                 "draws", "drawn", "graph", "fast_keys", "fallback")

    def __init__(self, kernel, consts, current, draws=()):
        self.kernel, self.consts = kernel, tuple(consts)
        # Random draws to make again before each call: (method, args, kwargs, the index of the
        # constant it replaces, or None when only its effect on the generator matters).
        self.draws = tuple((f, a, k, next((i for i, c in enumerate(self.consts) if c is value),
                                          None) if value is not None else None, value)
                           for f, a, k, value in draws)
        self.drawn = True  # the trace has just drawn the numbers for the call that made it
        # The hot path's call with one argument: the constants spelled out, because Numba's
        # dispatcher takes a slower path for `kernel(x, *consts)` (~0.2 µs, even for no consts).
        self.use(kernel)
        # None, or a function saying whether what the trace read besides the arguments still
        # holds (watch.py).  (Arrays read from the user's scope need no check: kernels read
        # them at every call.)
        self.current = current
        self.compiled = False
        self.out_shapes, self.out_tree = [()], None  # make_vjp's: the outputs' leaves
        self.graph = None  # make_vjp's: the adjoint, to inline when called inside a trace
        self.fast_keys = ()  # the hot path's keys, once the compiled kernel has run
        self.fallback = None  # the interpreted tier's kernel, while its successor is untried

    def use(self, kernel) -> None:
        """Run `kernel` from now on (a compiled kernel replacing the interpreted tier)."""
        self.kernel = kernel
        names = [f"c{i}" for i in range(len(self.consts))]
        scope = {"kernel": kernel, **dict(zip(names, self.consts))}
        self.call1 = kernel if not names else eval(  # noqa: S307 (built from names only)
            _call1_code(len(names)), scope)
        if self.draws:
            self.call1 = lambda x: kernel(x, *self.consts_now())

    def renew(self, draws) -> None:
        """Serve a new signature whose trace gave this entry's graph: the next call uses the
        numbers that trace drew (the generators have moved past them already)."""
        if self.draws:
            consts = list(self.consts)
            for (_, _, _, index, _), (_, _, _, value) in zip(self.draws, draws):
                if index is not None:
                    consts[index] = value
            self.consts, self.drawn = tuple(consts), True

    def consts_now(self) -> tuple:
        """The kernel's constants for this call: the random draws made afresh, in order."""
        if not self.draws:
            return self.consts
        if self.drawn:
            self.drawn = False
            return self.consts
        consts = list(self.consts)
        made: dict = {}  # id of a generator the trace made -> the one made for this call
        for f, args, kwargs, index, first in self.draws:
            if isinstance(first, Made):
                made[id(first.generator)] = f(*args, **kwargs)
                continue
            owner = getattr(f, "__self__", None)
            if id(owner) in made:
                f = getattr(made[id(owner)], f.__name__)
            value = f(*args, **kwargs)
            if first is None:
                continue
            value = np.asarray(value)
            if value.shape != first.shape or value.dtype != first.dtype:
                raise TracingError(
                    f"{getattr(f, '__name__', 'a random draw')} gave an array of shape "
                    f"{value.shape} and dtype {value.dtype}, but {first.shape} and {first.dtype} "
                    f"when the function was traced")
            if index is not None:
                consts[index] = value
        return tuple(consts)


# Per function: (argnums, kind) -> (entries, fast entries), shared by grad and value_and_grad.
_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Kernels kept per function and kind of derivative: the least recently used goes first.
MAX_SIGNATURES = int(os.environ.get("JITGRAD_MAX_SIGNATURES", "64"))
# Longer kernels run with the IR interpreter (Numba would take minutes to compile them).
MAX_KERNEL_LINES = int(os.environ.get("JITGRAD_MAX_KERNEL_LINES", "8000"))
# One signature is traced and compiled by one thread at a time.
_COMPILE_LOCK = threading.RLock()


class _Entries(collections.OrderedDict):
    """signature -> _Entry, least recently compiled or used first, at most MAX_SIGNATURES; an
    evicted entry leaves the hot path's table too."""

    def __init__(self, fast: dict):
        super().__init__()
        self.fast = fast

    def get(self, key, default=None):
        entry = super().get(key, default)
        if entry is not None:
            try:
                self.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return entry

    def __setitem__(self, key, entry):
        super().__setitem__(key, entry)
        self.move_to_end(key)
        while len(self) > max(MAX_SIGNATURES, 1):
            _, old = self.popitem(last=False)
            for k in [k for k, e in self.fast.items() if e is old]:
                del self.fast[k]
            if all(e.kernel is not old.kernel for e in self.values()):  # shared across sizes
                compile.forget(old.kernel)


class _GradFunction:
    def __init__(self, fun, argnum, with_value: bool, kind: str = "grad", cache=None,
                 api: str = "grad"):
        """`cache`: (owner, tag) to keep the kernels with another function's (a composition
        made afresh from the same user function finds them again).  `api`: the public
        function's name, for messages."""
        self.kind, self.api = kind, api
        if not callable(fun):
            raise ArgumentError(f"{api}: expected a function, got {type(fun).__name__}")
        self.fun, self.argnum, self.with_value = fun, argnum, with_value
        if isinstance(argnum, (tuple, list)):
            self.argnums = tuple(argnum)
        else:
            self.argnums = (argnum,)
        for a in self.argnums:
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise ArgumentError(
                    f"grad: argnum must be an int or a tuple of ints, got {argnum!r}")
        self.name = getattr(fun, "__name__", type(fun).__name__)
        owner, tag = cache if cache is not None else (fun, None)
        try:
            per_fun = _CACHES.setdefault(owner, {})
        except TypeError:  # not weak-referenceable (a ufunc, a __slots__ object): ours alone
            per_fun = {}
        key = (self.argnums, self.kind) if tag is None else (self.argnums, self.kind, tag)
        if key not in per_fun:
            fast: dict = {}
            per_fun[key] = (_Entries(fast), fast, _Numbers(), {}, {})
        self._entries, self._fast, self._numbers, self._accounts, self._by_graph = per_fun[key]
        self._fast_ok = self.argnums == (0,) and self.kind == "grad"

    def __repr__(self) -> str:
        if self.api == "jit":
            return f"<jitgrad jit of {self.name}>"
        kind = "value_and_grad" if self.with_value else "grad"
        return f"<jitgrad {kind} of {self.name}, argnum={self.argnum}>"

    def function(self):
        """The callable handed to the user.  A closure, because the hot path (one float64 array
        or float, differentiated, with a kernel for it) must cost as little Python as possible:
        hence also two near-identical copies rather than a `with_value` test on every call."""
        fast, slow, with_value = self._fast, self._call, self.with_value
        ndarray, float64 = _ndarray, _FLOAT

        if not self._fast_ok:
            def call(*args, **kwargs):
                return slow(args, kwargs)
        elif with_value:
            def call(*args, **kwargs):
                if len(args) == 1 and not kwargs:
                    x = args[0]
                    kind = type(x)
                    entry = fast.get(x.shape if kind is ndarray and x.dtype is float64 else kind)
                    if entry is not None and (entry.current is None or entry.current()):
                        return entry.call1(x)
                return slow(args, kwargs)
        else:
            def call(*args, **kwargs):
                if len(args) == 1 and not kwargs:
                    x = args[0]
                    kind = type(x)
                    entry = fast.get(x.shape if kind is ndarray and x.dtype is float64 else kind)
                    if entry is not None and (entry.current is None or entry.current()):
                        return entry.call1(x)[1]
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
        diff = sorted({a % n for a in self.argnums})
        # The gradients come back in argnum order (a repeated argnum gets its gradient again).
        order = tuple(diff.index(a % n) for a in self.argnums)
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
                key.append((tree, tuple(self._numbers.key(leaf, (i, j), dynamic) or
                                        _static_key(leaf, dynamic, i, self.name)
                                        for j, leaf in enumerate(leaves))))
        for name in sorted(kwargs):
            leaves = []
            tree = flatten(kwargs[name], leaves)
            key.append((name, tree, tuple(self._numbers.key(leaf, (name, j), dynamic) or
                                          _static_key(leaf, dynamic, name, self.name)
                                          for j, leaf in enumerate(leaves))))
        return tuple(key), dynamic, (trees, order)

    # --- calls --------------------------------------------------------------------------------
    def _call(self, args, kwargs):
        key, dynamic, trees = self._signature(args, kwargs)
        key = (key, _EXECUTION.mode)
        if any(isinstance(leaf, Tracer) for leaf in dynamic):
            return self._call_traced(args, kwargs, key, dynamic, trees)
        entry = self._entries.get(key)
        if entry is None and self._numbers.changing():
            entry, key, dynamic, trees = self._compile_with_numbers(args, kwargs)
        if entry is None or not (entry.current is None or entry.current()):
            entry = self._compile(args, kwargs, key)
        call_args = (*dynamic, *entry.consts_now())
        if entry.compiled:
            out = entry.kernel(*call_args)
        else:
            out = self._first_call(entry, call_args)
            entry.compiled = True
            for k in entry.fast_keys:  # compiled after the interpreted tier: now the hot path
                self._fast[k] = entry
        if self.kind == "value":
            return unflatten(entry.out_tree, iter(out))
        return self._package(out, trees)

    def _compile_with_numbers(self, args, kwargs):
        """A number argument that changes from call to call (an iteration count given to the
        loss) would trace and compile again at every call: it becomes a kernel argument
        instead, if the function can be traced with it unknown.  If it cannot (it gives a
        shape, or Python needs its value), it stays part of the signature."""
        promoted = self._numbers.promote()
        key, dynamic, trees = self._signature(args, kwargs)
        key = (key, _EXECUTION.mode)
        entry = self._entries.get(key)
        try:
            if entry is None or not (entry.current is None or entry.current()):
                entry = self._compile(args, kwargs, key)
        except TracingError:
            self._numbers.demote(promoted)
            key, dynamic, trees = self._signature(args, kwargs)
            key = (key, _EXECUTION.mode)
            entry = self._entries.get(key)
        return entry, key, dynamic, trees

    def make_vjp(self, args, kwargs):
        key, dynamic, trees = self._signature(args, kwargs)
        key = (key, _EXECUTION.mode)
        if any(isinstance(leaf, Tracer) for leaf in dynamic):
            build = self._build(args, kwargs, key, generate=False)

            shapes = [v.shape for v in build.graph.outputs]
            n = len(shapes)
            # The forward part is recorded once; each vjp call records only the adjoint.
            staged = Staged(build.grad_graph, list(dynamic), build.consts)

            def traced_vjp(g):
                leaves = _cotangents(g, build.out_tree, shapes, self.name, traced=True)
                return self._package((None, *staged(leaves)[n:]), trees)[1]

            return traced_vjp, unflatten(build.out_tree, iter(staged.known_outputs(n)))
        entry = self._entries.get(key)
        if entry is None or not (entry.current is None or entry.current()):
            entry = self._compile(args, kwargs, key)
        shapes, tree = entry.out_shapes, entry.out_tree
        n = len(shapes)
        consts = entry.consts_now()  # one forward pass: every vjp sees the same draws

        def vjp(g):
            traced = any(isinstance(leaf, Tracer) for leaf in _leaves_of(g))
            leaves = _cotangents(g, tree, shapes, self.name, traced=traced)
            if traced:  # called inside another trace: the adjoint's IR is inlined there
                out = evaluate(entry.graph, [*dynamic, *leaves],
                               list(consts[:len(entry.graph.consts)]))
            else:  # the lifted numbers as they are now: a tier's upgrade may have made them
                out = self._first_call(entry, (*dynamic, *leaves, *consts[:-1], entry.consts[-1]))
            return self._package((None, *out[n:]), trees)[1]

        zeros = [np.zeros(s) if s else 0.0 for s in shapes]
        out = self._first_call(entry, (*dynamic, *zeros, *consts))
        return vjp, unflatten(tree, iter(out[:n]))

    def jvp_traced(self, args, kwargs, tangent):
        """Inside a trace: (f(*args), J tangent), the forward-mode IR inlined there.  The
        tangent has the structure and shapes of the differentiated argument."""
        return self.jvp_staged(args, kwargs)(tangent)

    def jvp_staged(self, args, kwargs):
        """Inside a trace: `tangent -> (f(*args), J tangent)`, with the values' part of the
        forward-mode IR recorded once, here, and each call recording only the tangents'."""
        key, dynamic, (trees, _) = self._signature(args, kwargs)
        build = self._build(args, kwargs, (key, _EXECUTION.mode), generate=False)
        ((tree, count, _),) = trees
        staged = Staged(build.grad_graph, list(dynamic), build.consts)
        targets = build.grad_graph.inputs[len(dynamic):]
        n = len(build.graph.outputs)
        if len(targets) != count:
            raise JitgradInternalError("make_jvp: tangents and inputs do not match")
        values = unflatten(build.out_tree, iter(staged.known_outputs(n)))

        def run(tangent):
            leaves: list = []
            if flatten(tangent, leaves) != tree:
                raise ArgumentError(f"make_jvp of {self.name}: the tangent must have the "
                                    f"structure of argument {self.argnum} ({_structure(tree)}),"
                                    f" got {_structure(flatten(tangent, []))}")
            fitted = []
            for leaf, var in zip(leaves, targets):
                shape = tuple(leaf.shape) if isinstance(leaf, Tracer) else np.shape(leaf)
                if shape != tuple(var.shape):
                    raise ArgumentError(f"make_jvp of {self.name}: a tangent of shape {shape} "
                                        f"for an argument of shape {tuple(var.shape)}")
                if isinstance(leaf, Tracer):
                    fitted.append(leaf if leaf.dtype == var.dtype else leaf.astype(var.dtype))
                else:
                    fitted.append(np.asarray(leaf, dtype=var.dtype))
            out = staged(fitted)
            return values, unflatten(build.out_tree, iter(out[n:]))

        return run

    def _first_call(self, entry: _Entry, args):
        """Call an entry's kernel, compiling it if it is new.  A kernel that fails to compile
        after the interpreted tier ran its IR keeps the interpreter, with a warning: the
        interpreter is the reference, and the user's program goes on."""
        kernel = entry.kernel
        try:
            out = compile.first_call(kernel, args)
        except JitgradInternalError as e:
            if entry.fallback is None:
                raise
            _warn_once(self.name, f"compiling its kernel failed, so it keeps running in the "
                       f"interpreted tier (slower, same results); please report it: {e}")
            entry.use(entry.fallback)
            entry.fallback, entry.fast_keys = None, ()
            return entry.kernel(*args)
        if entry.kernel is kernel:  # (not an interpreted call that chose to compile)
            entry.fallback = None
        return out

    def _package(self, out, trees):
        trees, order = trees
        value, flat = out[0], iter(out[1:])
        grads = []
        for tree, count, kinds in trees:
            leaves = [_restore(next(flat), kind) for kind in kinds]
            grads.append(unflatten(tree, iter(leaves)))
        if isinstance(self.argnum, (tuple, list)):
            g = tuple(grads[i] if k == order.index(i) else _copy(grads[i])
                      for k, i in enumerate(order))
        else:
            g = grads[0]
        return (value, g) if self.with_value else g

    def _compile(self, args, kwargs, key) -> _Entry:
        with _COMPILE_LOCK:
            entry = self._entries.get(key)  # another thread may have compiled it meanwhile
            if entry is not None and (entry.current is None or entry.current()):
                return entry
            mode = _EXECUTION.mode
            # Before Numba has started, no kernel can be used at once: the source is generated
            # only once interpreting has cost the least a kernel can be priced at, so a
            # signature called a few times (one size of a sweep) never pays for codegen.
            defer = mode == "auto" and not _jit.is_ready()
            traced = self._trace(args, kwargs)
            # Signatures that differ only in a static number the trace did not keep (an
            # iteration count used as `i % n`) trace to the same graph: one entry serves them.
            # (Only a static leaf can differ without changing the graph: other signatures
            # differ in a shape or dtype, which the graph shows.  The key costs about 6 µs a
            # statement: 0.7 s for autograd's fluidsim.)
            gkey = _traced_key(traced, mode) if self._static_leaves(args, kwargs) else None
            same = self._by_graph.get(gkey, (None,))[0] if gkey is not None else None
            if same is not None and (same.current is None or same.current()):
                same.renew(traced[4])  # this trace's random draws, for this call
                self._entries[key] = same
                return same
            build = self._build(args, kwargs, key, generate=mode != "interpret" and not defer,
                                max_lines=MAX_KERNEL_LINES, traced=traced)

            def price() -> float | None:
                """How long to interpret before compiling: None (not at all: use the kernel at
                once) or inf (never compile)."""
                if build.source is None and not build.too_long:
                    self._generate(build, MAX_KERNEL_LINES)
                    if not build.too_long:
                        entry.consts = (*entry.consts[:-1], tuple(build.lifted.values()))
                if build.too_long:
                    # Numba's compile time grows faster than the source: a kernel this long
                    # would take minutes.  The interpreter runs the same IR at once.
                    _warn_once(self.name, f"its kernel has more than {MAX_KERNEL_LINES} lines "
                               f"of generated code, which Numba would take minutes to compile, "
                               f"so it runs with jitgrad's IR interpreter instead (set "
                               f"JITGRAD_MAX_KERNEL_LINES higher to compile it)")
                    return math.inf
                lines = build.source.count("\n")
                if mode == "compile":
                    return None
                if compile.is_cached(build.source):
                    # Loading it is cheap once Numba has started in this process; before,
                    # starting Numba is the price (about 0.5 s).
                    return None if _jit.is_ready() else TIER_SECONDS * TIER_START_SECONDS
                if compile_worker.enabled() and compile_worker.portable(build.source):
                    # Compiled by a worker process while this one goes on interpreting: the
                    # price here is loading it, as for a kernel in the disk cache.
                    return TIER_SECONDS * (TIER_START_SECONDS if not _jit.is_ready() else 0.1)
                return TIER_SECONDS * max(1.0, compile_seconds(lines))

            def upgrade(args=None, failed=None):
                """The interpreted tier has had its time: compile (on the next call), or start
                a worker process compiling it (with the call's `args`: returns the worker; its
                end calls this again, with why it `failed` if it did)."""
                if failed:
                    _warn_once(self.name, f"compiling its kernel in a worker process failed "
                               f"({failed}); it is compiled in this process instead")
                elif args is not None and not compile.is_cached(build.source):
                    # (The lifted numbers as the source reads them: a deferred source was
                    # generated after this call's arguments were made.)
                    args = (*args[:-1], tuple((build.lifted or {}).values()))
                    directory = compile.cache_dir()
                    lines = build.source.count("\n")
                    worker = directory and compile_worker.start(
                        build.source, args, directory, 60.0 + 10 * compile_seconds(lines))
                    if worker:
                        TIERS["compiled in a worker process"] += 1
                        return worker
                entry.fallback = _interpreted(build.grad_graph)
                entry.use(compile.load(build.source))
                entry.compiled, entry.fast_keys = False, tuple(fast)
                TIERS["compiled after interpreting"] += 1
                return None

            threshold = math.inf if mode == "interpret" else 0.0 if defer else price()
            # Signatures that differ only in sizes share a kernel, and the time they spend
            # interpreting adds up towards compiling it (one account per structure).
            if len(self._accounts) > MAX_SIGNATURES:
                self._accounts.clear()
            account = self._accounts.setdefault(_graph_structure(build.grad_graph), _Account())
            if defer:
                kernel = _Tiered(build.grad_graph, upgrade, TIER_SECONDS * min(
                    1.0, TIER_START_SECONDS), account, price)
            elif threshold is None:
                kernel = compile.load(build.source)
            elif threshold == math.inf:
                kernel = _interpreted(build.grad_graph)
            else:
                kernel = _Tiered(build.grad_graph, upgrade, threshold, account)
            tiered = isinstance(kernel, _Tiered)
            entry = _Entry(kernel, build.kernel_consts(), watch.guard(build.watches),
                           build.draws)
            entry.out_shapes = [v.shape for v in build.graph.outputs]
            entry.graph = build.grad_graph if self.kind == "vjp" else None
            entry.out_tree = build.out_tree
            entry.compiled = threshold == math.inf or tiered
            self._entries[key] = entry
            if gkey is not None:
                if len(self._by_graph) >= MAX_SIGNATURES:
                    self._by_graph.pop(next(iter(self._by_graph)))
                # (With the captured arrays: the key has their ids, which must stay theirs.)
                self._by_graph[gkey] = (entry, traced[1])
            hot = self._fast_ok and len(args) == 1 and not kwargs and threshold != math.inf
            # The hot path's keys: the shape of a float64 array (not 0-d: kernels take 0-d
            # values as scalars), or the type of a float (NumPy's float64 is one too; both get
            # a float gradient, as on the slow path).
            x = args[0] if hot else None
            fast = []
            if hot and type(x) is _ndarray and x.dtype == _FLOAT and x.ndim > 0:
                fast = [x.shape]
            elif hot and type(x) in (float, np.float64):
                fast = [float, np.float64]
            if not tiered:
                for k in fast:
                    self._fast[k] = entry
            return entry

    def _static_leaves(self, args, kwargs) -> bool:
        """Whether an argument not differentiated has a leaf other than an array (a number, a
        string, None, ...): a part of the signature that the traced graph may not show."""
        n = len(args)
        diff = {a % n for a in self.argnums} if n else set()
        leaves: list = []
        for i, a in enumerate(args):
            if i not in diff:
                flatten(a, leaves)
        flatten(kwargs, leaves)
        return any(not isinstance(leaf, np.ndarray) for leaf in leaves)

    def _build(self, args, kwargs, key, generate=True, max_lines=math.inf, traced=None) -> _Build:
        graph, consts, wrt, watches, draws, out_tree = traced or self._trace(args, kwargs)
        if self.kind == "value":  # a composition of derivatives, compiled as it is
            grad_graph, grad_consts = graph, consts
        elif self.kind == "jvp":
            grad_graph, grad_consts = forward.jvp_graph(graph, consts, wrt)
        elif self.kind == "vjp":
            grad_graph, grad_consts = ad.value_and_vjp_graph(graph, consts, wrt)
        else:
            grad_graph, grad_consts = ad.value_and_grad_graph(graph, consts, wrt)
        grad_graph = verify(fuse.dce(grad_graph))
        # The same text for grad and value_and_grad: one kernel (it computes both) serves both.
        kind = {"vjp": "value and vector-Jacobian product", "value": "values",
                "jvp": "value and Jacobian-vector product"}.get(
            self.kind, "value and gradient")
        note = f"{kind} of {self.name} with respect to argnum={self.argnum}"
        if self.api == "jit":
            note = f"values of {self.name}, compiled by jit"
        build = _Build(graph, grad_graph, grad_consts, None, watches, draws, out_tree, consts,
                       wrt, {}, note)
        if generate:
            self._generate(build, max_lines)
        return build

    @staticmethod
    def _generate(build: _Build, max_lines=math.inf) -> None:
        """The kernel's source, and the numbers it reads from its `lifted` argument; or, past
        `max_lines`, neither (`build.too_long`)."""
        if len(build.grad_graph.stmts) > 4 * max_lines:
            # Surely too long (a statement makes a line or more of a kernel, 4 or more in
            # measured kernels): not scheduled and generated only to find out (fluidsim: 2.4 s).
            build.too_long = True
            return
        try:
            build.source, lift = codegen.generate(fuse.schedule(build.grad_graph),
                                                  note=build.note, max_lines=max_lines)
        except codegen.KernelTooLong:
            build.too_long = True
            return
        build.lifted = lift.names()

    def _trace(self, args, kwargs):
        """Run the function on tracers: (graph, constant values, indices of graph inputs to
        differentiate)."""
        n = len(args)
        diff = {a % n for a in self.argnums}
        trace = Trace(self.name)
        trace.draws = []
        wrt = []
        rng_before = np.random.get_state()
        with trace:
            def lift(leaf, differentiated, where):
                if differentiated:
                    leaf = float_leaf(leaf, where)
                    wrt.append(len(trace.inputs))
                    dtype = np.complex128 if isinstance(leaf, complex) else np.float64
                    return trace.new_input(getattr(leaf, "shape", ()),
                                           getattr(leaf, "dtype", dtype))
                if isinstance(leaf, (_ndarray, Tracer)):
                    return trace.new_input(leaf.shape, leaf.dtype)
                if numbers.dynamic(leaf, where):
                    return trace.new_input((), _NUMBER_DTYPES[type(leaf)])
                return leaf

            numbers = self._numbers
            traced_args = []
            for i, arg in enumerate(args):
                leaves: list = []
                tree = flatten(arg, leaves)
                where = f"argument {i} of {self.name}"
                traced_args.append(unflatten(tree, iter([
                    lift(x, i in diff, (i, j) if i not in diff else where)
                    for j, x in enumerate(leaves)])))
            traced_kwargs = {}
            for name in sorted(kwargs):
                leaves = []
                tree = flatten(kwargs[name], leaves)
                traced_kwargs[name] = unflatten(tree, iter([lift(x, False, (name, j))
                                                            for j, x in enumerate(leaves)]))
            # Python control flow on traced values is rewritten into compiled loops/branches.
            try:
                out = converted_call(self.fun, *traced_args, **traced_kwargs)
            except TracingError as e:
                lists = [i for i in diff if isinstance(args[i], (list, tuple))]
                if not lists or "converted to a NumPy array" not in str(e):
                    raise
                raise TracingError(
                    f"{e} Argument {lists[0]} of {self.name} is a {type(args[lists[0]]).__name__}"
                    f": it is differentiated as a list of traced values, which jitgrad cannot "
                    f"make an array from yet. Pass an array (numpy.array(...)) to differentiate "
                    f"it as one.") from None
            outs: list = []
            tree_out = self.kind in ("vjp", "value", "jvp")
            out_tree = flatten(out, outs) if tree_out else None
            if tree_out and not outs:
                what = "jit" if self.api == "jit" else "make_vjp"
                raise TracingError(f"{what} of {self.name}: {self.name} returned no arrays")
            for leaf in outs if tree_out else [out]:
                _check_output(leaf, self.name, scalar=not tree_out,
                              complex_ok=self.kind != "grad")
            graph = trace.finish(outs if tree_out else [out])
        verify(graph)
        if _drew_uncaptured(rng_before, trace.draws):
            # Code jitgrad does not convert (a library's) drew from NumPy's global generator:
            # those numbers are folded into the trace, so it is traced afresh at every call,
            # which draws afresh, as the function run eagerly would.
            _warn_once(self.name, "it draws random numbers in code jitgrad does not convert, so "
                       "it is traced again at every call (slow, but each call draws afresh)")
            trace.watches[("retrace",)] = ("never",)
            trace.draws.clear()
        return graph, trace.const_values, tuple(wrt), trace.watches, trace.draws, out_tree

    def _call_traced(self, args, kwargs, key, dynamic, trees):
        """Called inside another trace (grad of grad): inline the gradient's IR there."""
        build = self._build(args, kwargs, key, generate=False)
        out = evaluate(build.grad_graph, dynamic, build.consts)
        if self.kind == "value":
            return unflatten(build.out_tree, iter(out))
        return self._package(out, trees)


_MODES = ("auto", "compile", "interpret")


class _Execution(threading.local):
    """How this thread runs the signatures it has not run before: "auto" (interpreted first,
    then compiled, see TIER_SECONDS), "compile" (Numba kernels at once) or "interpret" (the IR
    evaluated with NumPy, statement by statement: no compile time, slow calls).  Set with
    `jitgrad.execution(...)` or `$JITGRAD_EXECUTION`."""

    def __init__(self):
        self.mode = os.environ.get("JITGRAD_EXECUTION", "auto")
        if self.mode not in _MODES:
            raise ArgumentError(f"$JITGRAD_EXECUTION is {self.mode!r}; it must be one of "
                                f"{', '.join(map(repr, _MODES))}")


_EXECUTION = _Execution()


@contextlib.contextmanager
def execution(mode: str):
    """Within the block, run new signatures by `mode`: "auto" (the default: the interpreted
    tier first, compiled once interpreting has taken TIER_SECONDS; a kernel in the disk cache
    is loaded at once, or after TIER_START_SECONDS of interpreting if Numba has not started in
    this process yet), "compile" (compile at the first call: for benchmarks and tests of the
    kernels) or "interpret" (the reference interpreter only: NumPy, statement by statement).
    Kernels made before stay in use for the signatures they serve."""
    if mode not in _MODES:
        raise ArgumentError(f"execution mode must be one of {', '.join(map(repr, _MODES))}, "
                            f"got {mode!r}")
    saved, _EXECUTION.mode = _EXECUTION.mode, mode
    try:
        yield
    finally:
        _EXECUTION.mode = saved


# The interpreted tier: a new signature runs with the IR interpreter until its calls have taken
# this long in total, times its kernel's estimated compile time in seconds if that is more than
# 1 (`compile_seconds`), then compiles.  Paying for a compile only once interpreting has cost about
# as much (the ski-rental rule) keeps the total within about twice the better of the two
# choices made in hindsight: a short run never waits for Numba, a long one compiles early.
TIER_SECONDS = float(os.environ.get("JITGRAD_TIER_SECONDS", "1.0"))
# The same rule for a kernel already in the disk cache, in a process where Numba has not started
# yet (`import jitgrad` does not import it, see _jit.py): its price is Numba's start-up.  Once
# Numba has started, a cached kernel is loaded at once.
TIER_START_SECONDS = float(os.environ.get("JITGRAD_TIER_START_SECONDS", "0.5"))
TIERS = {"interpreted calls": 0, "compiled after interpreting": 0,
         "compiled in a worker process": 0}


def compile_seconds(lines: int) -> float:
    """About how long Numba takes to compile a kernel of `lines` lines of generated source, on
    the 2-core Xeon this was measured on (an unrolled RNN loss: 148 lines 0.87 s, 558 lines
    3.7 s, 2,166 lines 23 s, 5,382 lines 133 s; it grows about as the square).  The tier's price
    of compiling: a long kernel is compiled only once interpreting has cost about as much."""
    return 0.1 + 4.4e-3 * lines + 3.8e-6 * lines * lines


class _Account:
    """The interpreted time of the signatures whose kernels have one structure (sizes of one
    function), and the price of compiling their kernel once one of them has priced it."""

    __slots__ = ("spent", "price")

    def __init__(self):
        self.spent, self.price = 0.0, None


class _Tiered:
    """A signature's kernel in the interpreted tier (execution mode "auto"): it compiles once
    the calls on its `account` have taken `threshold` seconds.  With `price`, the threshold is a
    lower bound: crossing it takes the account's price, or asks `price()` for it (which generates
    the kernel's source; the others of the account generate theirs only to compile)."""

    __slots__ = ("run", "account", "upgrade", "threshold", "price", "worker", "library")

    def __init__(self, graph: Graph, upgrade, threshold: float, account: _Account, price=None):
        self.library = [0.0]
        self.run, self.account, self.upgrade = _interpreted(graph, self.library), account, upgrade
        self.threshold, self.price, self.worker = threshold, price, None

    def __call__(self, *args):
        # The time compiling could save: the call's, less its library calls (matrix products
        # take as long in a compiled kernel).
        start, library = time.perf_counter(), self.library[0]
        out = self.run(*args)
        account = self.account
        account.spent += time.perf_counter() - start - (self.library[0] - library)
        TIERS["interpreted calls"] += 1
        if self.worker is not None:  # compiling elsewhere: switch once it is in the cache
            if self.worker.done():
                failed, self.worker = self.worker.error, None
                self.upgrade(failed=failed or None)
            return out
        if account.spent >= self.threshold and self.price is not None:
            if account.price is None:
                account.price, self.price = _seconds(self.price()), None
            self.threshold = account.price
            if account.spent >= self.threshold and self.price is not None:
                # Priced by another signature: this one's own price (its source) decides.
                self.threshold, self.price = _seconds(self.price()), None
        if account.spent >= self.threshold:
            self.threshold = math.inf  # once
            self.worker = self.upgrade(args)
        return out


def _traced_key(traced, mode):
    """What a traced function computes, as a hashable key (None: no sharing): the graph exactly
    (`_exact_graph`), the identity of the constants it captured (random draws by what drew
    them, with exact arguments; whoever keeps the key keeps the constants, so that their ids
    stay theirs), the watches, the structure of the output."""
    graph, consts, wrt, watches, draws, out_tree = traced
    if any(isinstance(d[3], Made) for d in draws) or ("retrace",) in watches:
        return None
    drawn = {id(d[3]) for d in draws}
    try:
        key = (mode, _exact_graph(graph), wrt, repr(out_tree),
                tuple(("drawn",) if id(c) in drawn else id(c) for c in consts),
                tuple((getattr(f, "__func__", f), id(getattr(f, "__self__", None)),
                       _exact(tuple(a)), _exact(dict(sorted(k.items()))))
                      for f, a, k, _ in draws),
                tuple(watches))
        hash(key)
    except Exception:  # noqa: BLE001 (a parameter that cannot be a key: no sharing)
        return None
    return key


def _exact(value):
    """A parameter or literal as a key: numbers with their type and exact text (so 0.0 is not
    -0.0, 1 is not 1.0 or True), graphs by their statements, the rest as they are (ops by
    identity)."""
    if isinstance(value, Graph):
        return _exact_graph(value)
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return (type(value), repr(value))
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_exact(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _exact(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        raise TypeError("an array parameter")
    return value


def _exact_graph(graph: Graph) -> tuple:
    """A graph as a key, equal for two traces exactly when they record the same computation:
    every statement's primitive, parameters, inputs (variables by number, literals by value
    and dtype) and outputs' shapes and dtypes."""
    def var(v):
        return (v.id, v.shape, v.dtype.str)

    def atom(a):
        return ("lit", _exact(a.value), a.dtype.str) if isinstance(a, Lit) else a.id

    return (graph.name, tuple(map(var, graph.inputs)), tuple(map(var, graph.consts)),
            tuple((s.prim, tuple(map(atom, s.inputs)), tuple(map(var, s.outs)),
                   tuple((k, _exact(v)) for k, v in s.params.items())) for s in graph.stmts),
            tuple(map(atom, graph.outputs)))


def _seconds(price) -> float:
    return 0.0 if price is None else price


def _graph_structure(graph: Graph) -> tuple:
    """What signatures whose kernels may be one (they differ in sizes) have in common: the
    statements' primitives and ranks.  Only for the tiers' accounting: kernels are shared by
    their source text, never by this."""
    return (len(graph.inputs), tuple((s.prim, tuple(len(v.shape) for v in s.outs))
                                     for s in graph.stmts))


def tier_stats() -> dict:
    """How many calls ran in the interpreted tier, and how many signatures compiled after it
    (execution mode "auto"): a copy of the counters."""
    return dict(TIERS)


def _library_statements(graph: Graph) -> frozenset:
    """The statements that run the same library code (BLAS, LAPACK, convolution) interpreted or
    compiled: compiling does not make them faster."""
    found = set()
    for i, stmt in enumerate(graph.stmts):
        name = getattr(stmt.params.get("op"), "name", "")
        if stmt.prim is Prim.matmul or name in codegen.THREADED_OPS or name.startswith(
                "convolve"):
            found.add(i)
    return frozenset(found)


def _interpreted(graph: Graph, library=None):
    """A kernel that evaluates `graph` with NumPy: results as a compiled kernel gives them (new
    arrays, never an argument's memory; 0-d values as scalars).  It takes the compiled
    kernel's arguments: the inputs, the constants, and the lifted numbers, which it ignores.
    With `library` (a list of one number), the seconds its library calls take
    (`_library_statements`) are added to `library[0]`."""
    n, m = len(graph.inputs), len(graph.inputs) + len(graph.consts)
    frees = last_uses(graph)
    timed = _library_statements(graph) if library is not None else ()

    def kernel(*args):
        out = evaluate(graph, list(args[:n]), list(args[n:m]), frees, timed, library)
        return tuple(np.array(v) if np.ndim(v) else (v.item() if hasattr(v, "item") else v)
                     for v in out)

    return kernel


_NUMBER_DTYPES = {int: np.dtype(np.int64), float: np.dtype(np.float64)}


class _Numbers:
    """Which non-differentiated number arguments (by position: (argument, leaf)) are kernel
    arguments rather than part of the signature.  Each starts as part of the signature; one seen
    with a second value is promoted to a kernel argument (see `_compile_with_numbers`), unless
    tracing with it unknown failed before."""

    __slots__ = ("seen", "promoted", "static")

    def __init__(self):
        self.seen: dict = {}  # position -> the values seen (first two)
        self.promoted: set = set()
        self.static: set = set()

    def key(self, leaf, position, dynamic):
        """The key part of a number promoted to a kernel argument (appended to `dynamic`), or
        None (the leaf is keyed as before)."""
        if type(leaf) not in _NUMBER_DTYPES:
            return None
        if position in self.promoted:
            dynamic.append(leaf)
            return ("number", type(leaf))
        if position not in self.static:
            values = self.seen.setdefault(position, set())
            if len(values) < 2:
                values.add(_value_key(leaf))
        return None

    def changing(self) -> bool:
        return any(len(v) >= 2 and p not in self.promoted and p not in self.static
                   for p, v in self.seen.items())

    def promote(self) -> set:
        new = {p for p, v in self.seen.items()
               if len(v) >= 2 and p not in self.promoted and p not in self.static}
        self.promoted |= new
        return new

    def demote(self, positions) -> None:
        self.promoted -= positions
        self.static |= positions

    def dynamic(self, leaf, position) -> bool:
        return type(leaf) in _NUMBER_DTYPES and position in self.promoted


def _drew_uncaptured(before, draws) -> bool:
    """Whether NumPy's global generator moved past `before` by more than the captured draws."""
    def same(a, b):
        return np.array_equal(a[1], b[1]) and a[2:] == b[2:]

    after = np.random.get_state()
    if same(after, before):
        return False
    np.random.set_state(before)
    try:
        for f, args, kwargs, _ in draws:
            if getattr(f, "__self__", None) is np.random.mtrand._rand:
                f(*args, **kwargs)
        return not same(np.random.get_state(), after)
    finally:
        np.random.set_state(after)


_WARNED: set = set()


def _warn_once(name: str, what: str) -> None:
    """Warn once per function and message, pointing at the user's line that called jitgrad."""
    if (name, what) not in _WARNED:
        _WARNED.add((name, what))
        file, _, line = user_frame().rpartition(":")
        warnings.warn_explicit(f"jitgrad: {name}: {what}", JitgradWarning, file or "<unknown>",
                               int(line) if line.isdigit() else 0)


def _cotangents(g, tree, shapes, name: str, traced=False) -> list:
    """A vjp's cotangent, a tree like the output's, as the kernel's leaves."""
    leaves: list = []
    got = flatten(g, leaves)
    if got != tree:
        raise ArgumentError(f"vjp of {name}: the cotangent must have the structure of the "
                            f"output ({_structure(tree)}), got {_structure(got)}")
    if traced:
        return leaves
    return [_cotangent(leaf, shape, name) for leaf, shape in zip(leaves, shapes)]


def _structure(tree) -> str:
    if tree is None:
        return "an array"
    if tree[0] is dict:
        return "a dict with keys " + ", ".join(map(repr, tree[1]))
    return f"a {tree[0].__name__} of {len(tree[1])}"


def _cotangent(g, shape, name: str):
    """A vjp's cotangent as the kernel takes it, or a clear error."""
    if isinstance(g, (bool, np.bool_)) or not isinstance(g, (int, float, np.number, _ndarray)):
        raise ArgumentError(f"vjp of {name}: the cotangent must be a number or an array of the "
                            f"output's shape {shape}, got {type(g).__name__}")
    if np.iscomplexobj(g):
        raise ArgumentError(f"vjp of {name}: complex cotangents are not supported yet")
    if np.shape(g) not in ((), shape):
        raise ArgumentError(f"vjp of {name}: the cotangent has shape {np.shape(g)}, but the "
                            f"output has shape {shape}")
    if shape == ():
        return float(g)
    return np.ascontiguousarray(np.broadcast_to(np.asarray(g, dtype=float), shape))


def _check_output(out, name: str, scalar: bool, complex_ok: bool = True) -> None:
    if not complex_ok and np.result_type(getattr(out, "dtype", type(out))).kind == "c":
        raise TracingError(f"grad of {name}: {name} returned a complex value; grad applies to "
                           f"real scalar-valued functions (autograd's rule). For the complex "
                           f"derivative of a holomorphic function use holomorphic_grad.")
    if isinstance(out, Tracer):
        if scalar and out.size != 1:
            raise TracingError(f"grad of {name}: {name} must return a scalar, but it returned an "
                               f"array of shape {out.shape}")
        if out.dtype.kind not in "biufc":
            raise TracingError(f"grad of {name}: {name} returned a value of dtype {out.dtype}")
        return
    if isinstance(out, (bool, int, float, np.number)) or (
            isinstance(out, np.ndarray) and (out.size == 1 or not scalar)):
        return
    shape = getattr(out, "shape", None)
    what = f"an array of shape {shape}" if shape is not None else f"a {type(out).__name__}"
    if scalar:
        raise TracingError(f"grad of {name}: {name} must return a scalar, but it returned {what}")
    raise TracingError(f"make_vjp of {name}: {name} must return one array or number, but it "
                       f"returned {what}")


def _leaves_of(arg) -> list:
    leaves: list = []
    flatten(arg, leaves)
    return leaves


def _leaf_key(leaf):
    if type(leaf) is _ndarray or isinstance(leaf, Tracer):
        return (leaf.shape, leaf.dtype)
    return complex if isinstance(leaf, complex) else float


def _out_kind(leaf):
    """How to hand a leaf's gradient back: as a float for a Python number or a NumPy float64
    (a float too: the hot path returns the kernel's float as it is), else as an array of the
    argument's float dtype (float64 for integer arrays)."""
    if isinstance(leaf, (_ndarray, np.generic)) and type(leaf) is not np.float64:
        dt = leaf.dtype if leaf.dtype.kind in "fc" else _FLOAT
        return ("array", dt, np.ndim(leaf))
    return ("complex" if isinstance(leaf, complex) else "float", None, 0)


def _restore(value, kind):
    form, dtype, ndim = kind
    if isinstance(value, Tracer):
        return value
    if form == "float":
        return float(value)
    if form == "complex":
        return complex(value)
    if ndim == 0:
        return np.asarray(value, dtype=dtype)[()]
    return value if value.dtype == dtype else value.astype(dtype)


def _static_key(leaf, dynamic: list, where, fname: str):
    """Key part of a non-differentiated leaf: arrays are kernel inputs (keyed by shape and
    dtype), anything else is baked into the trace (keyed by value)."""
    if isinstance(leaf, (_ndarray, Tracer)):
        if type(leaf) is not _ndarray and not isinstance(leaf, Tracer):
            leaf = leaf.view(_ndarray)  # a subclass (memmap, matrix): its data, as NumPy does
        dynamic.append(leaf[()] if leaf.ndim == 0 else leaf)  # kernels take 0-d as scalars
        return ("array", leaf.shape, leaf.dtype)
    try:
        hash(leaf)
    except TypeError:
        raise ArgumentError(f"argument {where} of {fname} is a {type(leaf).__name__}, which "
                            f"jitgrad can neither trace nor use as a cache key") from None
    return ("static", type(leaf), _value_key(leaf))


def _value_key(value):
    """A number as a cache key: floats by their bits, so that -0.0 is not 0.0 and every NaN
    finds the kernel traced for NaN (NaN is not equal to itself)."""
    if isinstance(value, (float, np.floating)):
        return float(value).hex()
    if isinstance(value, (complex, np.complexfloating)):
        return float(value.real).hex(), float(value.imag).hex()
    return value


def _copy(tree):
    return copy.deepcopy(tree)
