"""`jitgrad.extend`: your own primitives with your own gradients, with autograd's names and
signatures (`autograd.extend`):

    from jitgrad.extend import primitive, defvjp

    @primitive
    def logsumexp(x):
        m = numpy.max(x)
        return m + numpy.log(numpy.sum(numpy.exp(x - m)))

    defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

A primitive's body is any Python: it runs on NumPy values.  Inside a compiled kernel it is a
call back into Python (`numba.objmode`, some microseconds a call), between the fused loops.  Its
VJP makers take `(ans, *args, **kwargs)` and return `g -> cotangent`; written with
`jitgrad.numpy`, they become IR that fuses and can be differentiated again (grad of grad works
when the VJP is itself differentiable; a primitive without a VJP for an argument raises a clear
error when that argument is differentiated).

The result's shape and dtype are found by calling the function once on arrays of ones of the
operands' shapes (once per signature); a primitive returns one float or complex array or number.
"""

from __future__ import annotations

import functools
import warnings

import numba
import numpy as np

from .errors import TracingError
from .ops import call_op
from .trace import Tracer, user_frame

__all__ = ["primitive", "defvjp", "defvjp_argnum", "defvjp_argnums", "defjvp", "defjvp_argnum",
           "notrace_primitive"]

# Index -> (primitive, the arguments that are not operands, keyword arguments, operand
# positions), for the callbacks of compiled kernels.  The index reaches the kernel as an operand
# (a constant array), never as text of its source: a kernel compiled in another process, or for
# another primitive of the same name, can never call the wrong function.  Filled when a function
# is traced, which in every process comes before any call of its kernel.
_CALLS: list = []
_INDEX: dict = {}


def _call_back(args):
    *operands, index = args
    prim, static, kwargs, positions = _CALLS[int(index[0])]
    out = np.asarray(prim.fun(*_merge(static, positions, operands), **kwargs))
    return np.ascontiguousarray(out.reshape(-1))


def _merge(static, positions, operands) -> list:
    args = list(static)
    for position, value in zip(positions, operands):
        args[position] = value
    return args


@numba.njit(cache=True)
def _real_kernel(*args):
    with numba.objmode(out="float64[::1]"):
        out = _call_back(args).astype(np.float64)
    return out


@numba.njit(cache=True)
def _complex_kernel(*args):
    with numba.objmode(out="complex128[::1]"):
        out = _call_back(args).astype(np.complex128)
    return out


class Primitive:
    """A function that jitgrad calls as a whole (see the module docstring)."""

    def __init__(self, fun):
        self.fun = fun
        self.vjp_makers: dict[int, object] = {}
        self.vjp_argnum_maker = None
        self.jvp_makers: dict[int, object] = {}
        self.jvp_argnum_maker = None
        self._results: dict = {}  # signature -> (shape, dtype) of the result
        self._ops: dict = {}  # (dtype, number of operands) -> op
        functools.update_wrapper(self, fun)

    def __repr__(self) -> str:
        return f"<jitgrad primitive {getattr(self.fun, '__qualname__', self.fun)}>"

    def __call__(self, *args, **kwargs):
        if not any(isinstance(a, Tracer) for a in args):
            if any(isinstance(v, Tracer) for v in kwargs.values()):
                raise TracingError(f"{self.__name__}: traced values must be positional "
                                   f"arguments of a primitive (at {user_frame()})")
            return self.fun(*args, **kwargs)
        from . import numpy as jnp
        from .ops import apply

        positions = tuple(i for i, a in enumerate(args) if _is_operand(a))
        operands = [args[i] for i in positions]
        static = tuple(None if i in positions else a for i, a in enumerate(args))
        shape, dtype = self._result(operands, static, kwargs, positions)
        entry = (id(self), repr(static), repr(sorted(kwargs.items())), positions)
        if entry not in _INDEX:
            _INDEX[entry] = len(_CALLS)
            _CALLS.append((self, static, dict(kwargs), positions))
        index = np.array([_INDEX[entry]], dtype=np.int64)
        op = self._op(dtype, len(operands))
        out = apply(op, *operands, index, shape=shape, call=_Call(static, kwargs, positions))
        return jnp.reshape(out, shape)

    def _result(self, operands, static, kwargs, positions):
        dtypes = tuple(o.dtype if isinstance(o, Tracer) else np.result_type(o) for o in operands)
        signature = (tuple(np.shape(o) for o in operands), dtypes, repr(static),
                     repr(sorted(kwargs.items())))
        if signature not in self._results:
            ones = [np.ones(np.shape(o), d) if np.shape(o) else d.type(1)
                    for o, d in zip(operands, dtypes)]
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    example = np.asarray(self.fun(*_merge(static, positions, ones), **kwargs))
            except Exception as e:
                raise TracingError(
                    f"primitive {self.__name__}: jitgrad calls it once on arrays of ones of its "
                    f"arguments' shapes to learn its result's shape, and it raised "
                    f"{type(e).__name__}: {e}") from None
            if example.dtype.kind not in "biufc":
                raise TracingError(f"primitive {self.__name__} returned a {example.dtype} value; "
                                   f"a primitive returns one array or number")
            dtype = np.dtype(np.complex128 if example.dtype.kind == "c" else np.float64)
            self._results[signature] = (example.shape, dtype)
        return self._results[signature]

    def _op(self, dtype, n: int):
        if (dtype, n) not in self._ops:
            def shape(*operands, shape, call):
                return [((int(np.prod(shape, dtype=np.int64)),), dtype)]

            def numpy(*values, shape, call):
                out = np.asarray(self.fun(*call.args(values[:-1]), **call.kwargs), dtype=dtype)
                return np.ascontiguousarray(out.reshape(-1))

            self._ops[dtype, n] = call_op(
                getattr(self.fun, "__name__", "primitive"), numpy=numpy, shape=shape,
                kernel=_complex_kernel if dtype.kind == "c" else _real_kernel,
                vjp=tuple(self._rule(k) for k in range(n)) + (None,),  # None: the index
                jvp=tuple(self._jvp_rule(k) for k in range(n)) + (None,))
        return self._ops[dtype, n]

    def _rule(self, k: int):
        def rule(g, ans, *operands, shape, call):
            from . import numpy as jnp

            argnum = call.positions[k]
            args = call.args(operands[:-1])
            ans, g = jnp.reshape(ans, shape), jnp.reshape(g, shape)
            if argnum in self.vjp_makers:
                maker = self.vjp_makers[argnum]
                if maker is None:
                    return None
                out = maker(ans, *args, **call.kwargs)(g)
            elif self.vjp_argnum_maker is not None:
                out = self.vjp_argnum_maker(argnum, ans, args, call.kwargs)(g)
            else:
                raise TracingError(f"primitive {self.__name__} has no VJP for argument "
                                   f"{argnum} (defvjp(f, maker_0, maker_1, ...) gives one per "
                                   f"argument)")
            return _checked(out, np.shape(operands[k]), f"the VJP of primitive "
                            f"{self.__name__} for argument {argnum}", "that argument")

        return rule

    def _jvp_rule(self, k: int):
        def rule(t, ans, *operands, shape, call):
            from . import numpy as jnp

            argnum = call.positions[k]
            if argnum in self.jvp_makers:
                maker = self.jvp_makers[argnum]
            elif self.jvp_argnum_maker is not None:
                maker = functools.partial(self.jvp_argnum_maker, argnum)
            else:
                return NotImplemented  # forward mode transposes the VJP instead
            if maker is None:
                return None
            args = call.args(operands[:-1])
            out = maker(t, jnp.reshape(ans, shape), *args, **call.kwargs)
            out = _checked(out, shape, f"the JVP of primitive {self.__name__} for argument "
                           f"{argnum}", "the primitive's result")
            return jnp.reshape(jnp.broadcast_to(out, shape), (-1,))

        return rule


def _checked(value, shape, what: str, of: str):
    """A rule's result, which must have `shape` (a number for a 0-d one): else a clear error."""
    got = tuple(value.shape) if isinstance(value, Tracer) else np.shape(value)
    if got != tuple(shape):
        raise TracingError(f"{what} returned a value of shape {got}; it must have the shape of "
                           f"{of}, {tuple(shape)}")
    return value


def _is_operand(a) -> bool:
    return isinstance(a, (Tracer, np.ndarray, float, int, complex, np.number)) and \
        not isinstance(a, (bool, np.bool_))


class _Call:
    """A primitive call's arguments that are not operands, carried in its statement's
    parameters (printed short; never written into generated code)."""

    def __init__(self, static, kwargs, positions):
        self.static, self.kwargs, self.positions = static, dict(kwargs), positions

    def args(self, operands) -> list:
        return _merge(self.static, self.positions, operands)

    def __repr__(self) -> str:
        return f"<{len(self.positions)} operands>"


def primitive(fun) -> Primitive:
    """Make `fun` a primitive: jitgrad calls it as a whole and uses the VJPs given to it by
    `defvjp` (autograd.extend.primitive)."""
    return fun if isinstance(fun, Primitive) else Primitive(fun)


def defvjp(fun: Primitive, *vjpmakers, argnums=None) -> None:
    """Give `fun` a VJP maker per argument: `maker(ans, *args, **kwargs)` returns the function
    `g -> cotangent of that argument` (autograd.extend.defvjp).  None: no gradient flows there."""
    _check(fun, "defvjp")
    for argnum, maker in zip(argnums if argnums is not None else range(len(vjpmakers)),
                             vjpmakers):
        fun.vjp_makers[argnum] = maker


def defvjp_argnum(fun: Primitive, vjpmaker) -> None:
    """One maker for every argument: `vjpmaker(argnum, ans, args, kwargs)` returns
    `g -> cotangent` (autograd.extend.defvjp_argnum)."""
    _check(fun, "defvjp_argnum")
    fun.vjp_argnum_maker = vjpmaker


def defvjp_argnums(fun: Primitive, vjpmaker) -> None:
    """`vjpmaker(argnums, ans, args, kwargs)` returns `g -> tuple of cotangents`, one per
    argnum (autograd.extend.defvjp_argnums)."""
    _check(fun, "defvjp_argnums")

    def per_argnum(argnum, ans, args, kwargs):
        return lambda g: vjpmaker((argnum,), ans, args, kwargs)(g)[0]

    fun.vjp_argnum_maker = per_argnum


def defjvp(fun: Primitive, *jvpmakers, argnums=None) -> None:
    """Give `fun` a forward-mode rule per argument: `maker(t, ans, *args, **kwargs)` returns
    the result's tangent for that argument's tangent `t` (autograd.extend.defjvp).  None: no
    tangent flows from there.  Without one, forward mode transposes the argument's VJP (which
    must then be differentiable)."""
    _check(fun, "defjvp")
    for argnum, maker in zip(argnums if argnums is not None else range(len(jvpmakers)),
                             jvpmakers):
        fun.jvp_makers[argnum] = maker


def defjvp_argnum(fun: Primitive, jvpmaker) -> None:
    """One forward rule for every argument: `jvpmaker(argnum, t, ans, args, kwargs)` returns the
    result's tangent (autograd.extend.defjvp_argnum)."""
    _check(fun, "defjvp_argnum")

    def per_argnum(argnum, t, ans, *args, **kwargs):
        return jvpmaker(argnum, t, ans, args, kwargs)

    fun.jvp_argnum_maker = per_argnum


def notrace_primitive(fun):
    """A function whose result never depends differentiably on its arguments (autograd's
    notrace_primitive): called on the values, which must be known when tracing."""
    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        values = [a._known_or(f"{getattr(fun, '__name__', 'a notrace_primitive')} of")
                  if isinstance(a, Tracer) else a for a in args]
        return fun(*values, **kwargs)

    return wrapper


def _check(fun, what):
    if not isinstance(fun, Primitive):
        raise TypeError(f"{what}: {getattr(fun, '__name__', fun)!r} is not a primitive; "
                        f"decorate it with jitgrad.extend.primitive first")
