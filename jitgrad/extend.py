"""`jitgrad.extend`: your own primitives with your own gradients, with autograd's names and
signatures (`autograd.extend`):

    from jitgrad.extend import primitive, defvjp

    @primitive
    def logsumexp(x):
        m = numpy.max(x)
        return m + numpy.log(numpy.sum(numpy.exp(x - m)))

    defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

A primitive's body is called as a whole; how depends on the tier and on the body:
  - the interpreter (and a call on plain values) calls it in Python, on NumPy values;
  - a compiled kernel calls it natively when Numba can compile it (plain NumPy and `math` code:
    `jitgrad.numpy` in its body reads as NumPy there).  Its arguments that are not operands are
    frozen into that native code, and the values of the globals and closure variables it reads
    are part of the kernel's key, so changing one compiles afresh instead of running stale code;
  - else (SciPy, a C library, arbitrary Python) a compiled kernel calls back into Python
    (`numba.objmode`, some microseconds a call), between the fused loops, with a one-time
    warning naming why Numba could not compile it.  `primitive(fun, native=False)` asks for the
    callback (no warning).
Which one a kernel uses is decided when it compiles: Numba's native code is tried once on
arrays of ones of the operands' shapes and must give the values the Python body gives.

Its VJP makers take `(ans, *args, **kwargs)` and return `g -> cotangent`; written with
`jitgrad.numpy`, they become IR that fuses and can be differentiated again (grad of grad works
when the VJP is itself differentiable; a primitive without a VJP for an argument raises a clear
error when that argument is differentiated).

The result's shape and dtype are found by calling the function once on arrays of ones of the
operands' shapes (once per signature); a primitive returns one float or complex array or number.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import threading
import types
import warnings

import numpy as np

from . import _jit, watch
from ._jit import NUMBA as numba
from .errors import JitgradWarning, TracingError
from .ops import CallOp
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


def _call_back(args, dtype):
    *operands, index = args
    prim, static, kwargs, positions = _CALLS[int(index[0])]
    out = np.asarray(prim.fun(*_merge(static, positions, operands), **kwargs))
    return np.array(out.reshape(-1), dtype=dtype)  # the one copy: never the user's memory


def _merge(static, positions, operands) -> list:
    args = list(static)
    for position, value in zip(positions, operands):
        args[position] = value
    return args


@_jit.njit(cache=True)
def _real_kernel(*args):
    with numba.objmode(out="float64[::1]"):
        out = _call_back(args, np.float64)
    return out


@_jit.njit(cache=True)
def _complex_kernel(*args):
    with numba.objmode(out="complex128[::1]"):
        out = _call_back(args, np.complex128)
    return out


# Native primitives.  Generated code names one as `jitgrad.extend.n_<name>_<digest>` (the
# digest covers the body's source, what it reads, the frozen arguments and the operands'
# types); Numba looks the name up when it compiles the kernel, and this module's __getattr__
# then makes it: the native function, or the callback when Numba cannot compile the body.  A
# kernel loaded from the disk cache never looks it up (Numba linked the code into it).
_NATIVE: dict = {}  # name -> (primitive, static, kwargs, positions, operand types, shape, dtype)
_NATIVE_LOCK = threading.Lock()


def __getattr__(name: str):
    spec = _NATIVE.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _NATIVE_LOCK:
        if name not in globals():
            globals()[name] = _native_or_callback(name, *spec)
    return globals()[name]


def _native_or_callback(name, prim, static, kwargs, positions, operand_types, shape, dtype):
    callback = _complex_kernel if dtype.kind == "c" else _real_kernel
    if not prim.native:
        return callback
    ones = [np.ones(s, d) if s else d.type(1) for s, d in operand_types]
    try:
        native = _native_function(name, prim, static, kwargs, positions, shape, dtype)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = native(*ones, np.zeros(1, np.int64))
            want = np.asarray(prim.fun(*_merge(static, positions, ones), **kwargs), dtype)
        if not np.allclose(got, want.reshape(-1), rtol=1e-9, atol=1e-300, equal_nan=True):
            raise ValueError("compiled by Numba, it gives other values than in Python on "
                             "arrays of ones")
    except Exception as e:  # noqa: BLE001 (whatever Numba or the body raises: the callback)
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = lines[0] if lines else type(e).__name__
        if not prim.warned:
            prim.warned = True
            code = getattr(prim.fun, "__code__", None)
            warnings.warn_explicit(
                f"jitgrad: primitive {prim.__name__} runs in compiled kernels as a call back "
                f"into Python, because Numba cannot compile it ({why}); "
                f"primitive(f, native=False) asks for that without this warning",
                JitgradWarning, code.co_filename if code else "<unknown>",
                code.co_firstlineno if code else 0)
        return callback
    return native


def _native_function(name, prim, static, kwargs, positions, shape, dtype):
    """`name(*operands, index)` in nopython mode: the body called with the frozen arguments, its
    result a new flat array of the traced shape and dtype (a different shape raises)."""
    namespace = {"np": np, "fun": prim.compiled()}
    it = iter(f"a{k}" for k in range(len(positions)))
    params = [f"a{k}" for k in range(len(positions))] + ["index"]
    call = []
    for i, value in enumerate(static):
        if i in positions:
            call.append(next(it))
        else:
            namespace[f"s{i}"] = value  # a global: Numba freezes it into the code
            call.append(f"s{i}")
    for key, value in kwargs.items():
        namespace[f"k_{key}"] = value
        call.append(f"{key}=k_{key}")
    message = (f"primitive {prim.__name__} gave a result of another shape in compiled code "
               f"than in Python, {tuple(shape)}")
    source = (f"def {name}({', '.join(params)}):\n"
              f"    out = np.asarray(fun({', '.join(call)})).astype(np.{dtype.name})\n"
              f"    if out.shape != {tuple(shape)!r}:\n"
              f"        raise ValueError({message!r})\n"
              f"    return out.reshape(-1)\n")
    exec(compile(source, f"<jitgrad native primitive {prim.__name__}>", "exec"), namespace)
    return numba.njit(error_model="numpy")(namespace[name])


def _for_numba(fun):
    """`fun` with the modules of jitgrad.numpy it reads swapped for NumPy's (a primitive's body
    runs on NumPy values, so `np.exp` there is NumPy's either way)."""
    code, namespace = getattr(fun, "__code__", None), getattr(fun, "__globals__", None)
    if code is None or namespace is None:
        return fun
    swapped = {}
    for name in watch._global_names(code):
        value = namespace.get(name)
        if isinstance(value, types.ModuleType) and value.__name__.startswith("jitgrad.numpy"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    swapped[name] = importlib.import_module(value.__name__[len("jitgrad."):])
                except ImportError:
                    pass
    if not swapped:
        return fun
    new = types.FunctionType(code, {**namespace, **swapped}, fun.__name__, fun.__defaults__,
                             fun.__closure__)
    new.__kwdefaults__ = fun.__kwdefaults__
    return new


def _reads(fun, depth: int = 0) -> list:
    """What a function's code reads from outside its arguments, by value: the globals it names,
    its closure cells and defaults (and, a few levels deep, those of the functions it calls)."""
    code, namespace = getattr(fun, "__code__", None), getattr(fun, "__globals__", None)
    if code is None or namespace is None:
        return [("object", id(fun))]
    parts = [(n, _value_print(namespace.get(n, watch._MISSING), depth))
             for n in watch._global_names(code)]
    for cell in fun.__closure__ or ():
        try:
            parts.append(("cell", _value_print(cell.cell_contents, depth)))
        except ValueError:
            parts.append(("cell", "empty"))
    parts.append(("defaults", _value_print(fun.__defaults__, depth),
                  _value_print(fun.__kwdefaults__, depth)))
    return parts


def _value_print(value, depth: int):
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return (type(value).__name__, repr(value))
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return ("array", str(value.dtype), value.shape,
                hashlib.sha256(data.view(np.uint8).reshape(-1) if data.size else b"").hexdigest())
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_value_print(v, depth) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _value_print(v, depth)) for k, v in value.items()))
    fun = getattr(value, "py_func", value)  # a Numba function: its Python one
    if isinstance(fun, types.FunctionType) and depth < 3:
        return ("function", _source(fun), tuple(_reads(fun, depth + 1)))
    # Anything else Numba cannot freeze into native code: a body reading it runs as the
    # callback, which reads it afresh at every call, so its identity is enough here.
    return ("object", type(value).__name__, id(value))


def _source(fun) -> str:
    try:
        return inspect.getsource(fun)
    except (OSError, TypeError):
        code = getattr(fun, "__code__", None)
        return repr((code.co_code, code.co_consts, code.co_names)) if code else repr(fun)


class _NativeRef:
    """How generated code names a native primitive: `jitgrad.extend.<name>` (see `_NATIVE`)."""

    def __init__(self, name: str):
        self.__module__, self.__name__ = __name__, name


class _PrimitiveOp(CallOp):
    """A primitive's call op: its kernel is named, made when a kernel first needs it."""

    registered = False  # not one of jitgrad's own ops (ops.ALL_OPS)

    def fingerprint(self) -> str:
        return self.kernel.__name__.rsplit("_", 1)[-1]


class Primitive:
    """A function that jitgrad calls as a whole (see the module docstring)."""

    def __init__(self, fun, native: bool = True):
        self.fun = fun
        self.native = native  # False: compiled kernels always call back into Python
        self.warned = False  # the fallback's warning, once
        self._compiled: dict = {}  # what the body reads -> its Numba function
        self.vjp_makers: dict[int, object] = {}
        self.vjp_argnum_maker = None
        self.jvp_makers: dict[int, object] = {}
        self.jvp_argnum_maker = None
        self._results: dict = {}  # signature -> (shape, dtype) of the result
        self._ops: dict = {}  # native name -> op
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
        op = self._op(self._native_name(operands, static, kwargs, positions, shape, dtype),
                      dtype, len(operands))
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

    def compiled(self):
        """The body as a Numba function (made afresh when what it reads has changed)."""
        key = repr(_reads(self.fun))
        if key not in self._compiled:
            self._compiled[key] = numba.njit(error_model="numpy")(_for_numba(self.fun))
        return self._compiled[key]

    def _native_name(self, operands, static, kwargs, positions, shape, dtype) -> str:
        """The name generated code calls this primitive by (see `_NATIVE`), for these operand
        types and frozen arguments and for what the body reads now."""
        operand_types = tuple((tuple(np.shape(o)), np.dtype(o.dtype if isinstance(o, Tracer)
                                                             else np.result_type(o)))
                              for o in operands)
        reads = ()
        if self.native:
            # Numba freezes the globals and closure variables the body reads: the trace is
            # redone when one changes, and then names (and compiles) another native function.
            watch.watch_function(self.fun, contents=True)
            reads = _reads(self.fun)
        text = repr((_source(self.fun), reads, _value_print(static, 0),
                     _value_print(kwargs, 0), positions, operand_types, tuple(shape),
                     str(dtype), self.native))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        stem = "".join(c if c.isalnum() else "_" for c in self.__name__)[:40]
        name = f"n_{stem}_{digest}"
        _NATIVE.setdefault(name, (self, static, dict(kwargs), positions, operand_types,
                                  tuple(shape), dtype))
        return name

    def _op(self, name: str, dtype, n: int):
        if name not in self._ops:
            def shape(*operands, shape, call):
                return [((int(np.prod(shape, dtype=np.int64)),), dtype)]

            def numpy(*values, shape, call):
                out = np.asarray(self.fun(*call.args(values[:-1]), **call.kwargs), dtype=dtype)
                return np.ascontiguousarray(out.reshape(-1))

            self._ops[name] = _PrimitiveOp(
                getattr(self.fun, "__name__", "primitive"), numpy=numpy, shape=shape,
                kernel=_NativeRef(name),
                vjp=tuple(self._rule(k) for k in range(n)) + (None,),  # None: the index
                jvp=tuple(self._jvp_rule(k) for k in range(n)) + (None,))
        return self._ops[name]

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


def primitive(fun=None, *, native: bool = True):
    """Make `fun` a primitive: jitgrad calls it as a whole and uses the VJPs given to it by
    `defvjp` (autograd.extend.primitive).  Compiled kernels run it natively when Numba can
    compile it; `native=False` (as `@primitive(native=False)`) makes them call back into
    Python instead (see the module docstring)."""
    if fun is None:
        return functools.partial(primitive, native=native)
    return fun if isinstance(fun, Primitive) else Primitive(fun, native=native)


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
