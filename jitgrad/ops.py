"""Operations defined by the families (`jitgrad/numpy/*.py`, `jitgrad/scipy/*.py`), each with all
of its facts in one place.

The core primitive set (`primitives.py`) stays small: what fusion, code generation and the
reverse-mode driver must understand one by one.  Everything else is an `Op`, carried by one of two
generic primitives:

  - `Prim.elementwise`: a function of its operands' elements (floor, arctan2, gammaln, ...).  It
    fuses like `exp`: generated loops compute it per element, from `code` (a format string over
    the operands' expressions) or from `scalar` (a Numba function the loop calls).
  - `Prim.call`: anything else (a LAPACK call, a sort, a gather, a cumulative sum): a call of the
    Numba function `kernel` between loop nests, on whole arrays.  It may have several results.

An op's definition reads like a row of autograd's `numpy_vjps.py`:

    floor = elementwise_op("floor", numpy=np.floor, code="np.floor({0})", dtype="same", vjp=None)

    solve = call_op("solve", numpy=_solve, kernel=_solve_kernel, shape=_solve_shape,
                    vjp=(_solve_vjp_a, _solve_vjp_b))

`vjp` holds one rule per operand, `rule(g, ans, *operands, **params)` -> cotangent, written with
`jitgrad.numpy` so that it emits IR (a rule may be None: no gradient flows to that operand); for
an op with several results, `g` and `ans` are tuples (a result nothing reads has a zero `g`).
`vjp=None` declares the op piecewise constant (floor, argmax): zero gradients, as in autograd.

Rules for kernels (the Numba functions of `call` ops and `scalar` functions): a 0-d value is a
scalar, as everywhere in generated code; operands come after them `params` listed by the op's
`static` names, as literal arguments; results are new arrays, never an operand's memory.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np

from .errors import TracingError

# Every public function of jitgrad's NumPy/SciPy modules: public module name ("numpy",
# "numpy.linalg", "scipy.special", ...) -> function name -> function.  docs/numpy.md is made
# from this table (and a test keeps the two in sync).
REGISTRY: dict[str, dict[str, object]] = {}
# Every op made, in order (tests check each one's facts).
ALL_OPS: list = []


def export(module: str, *names):
    """Register a function as `module.name` (under each of `names`, default its own name)."""
    def register(fn):
        table = REGISTRY.setdefault(module, {})
        for name in names or (fn.__name__,):
            table[name] = fn
        return fn

    return register


class Op:
    """An operation outside the core primitive set.  See the module docstring."""

    registered = True  # one of jitgrad's own (ALL_OPS); a user's primitive is not

    def __init__(self, name, *, numpy, vjp=(), static=(), doc="", jvp=()):
        self.name = name
        self.numpy = numpy
        self.vjp = vjp
        # Optional forward-mode rules, one per operand: rule(t, ans, *operands, **params) gives
        # the result's tangent (NotImplemented: derive it from the VJP, see forward.py).
        self.jvp = tuple(jvp)
        self.static = tuple(static)
        self.doc = doc
        self._fingerprint = None
        if self.registered:
            ALL_OPS.append(self)

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def rules(self, n_operands: int):
        if self.vjp is None:
            return (None,) * n_operands
        rules = tuple(self.vjp) + (None,) * (n_operands - len(self.vjp))
        return rules

    def fingerprint(self) -> str:
        """A hash of the code generated kernels run for this op: part of a kernel's source, so a
        changed implementation never loads a kernel compiled against the old one."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.name.encode())
            for fn in self._functions():
                fn = getattr(fn, "py_func", fn)
                try:
                    h.update(inspect.getsource(fn).encode())
                except (OSError, TypeError):
                    h.update(repr(getattr(fn, "__code__", fn)).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def _functions(self):
        return ()

    def __repr__(self) -> str:
        return self.name


class ElementwiseOp(Op):
    """A function of its operands' elements, broadcast as NumPy broadcasts.  `dtype` gives the
    result's dtype: "float" (a float dtype of the operands', float64 from integers), "same" (the
    operands' result type), "bool", or "real" (a float of the operands' precision: real parts,
    magnitudes)."""

    def __init__(self, name, *, numpy, code=None, scalar=None, dtype="float", vjp=(), static=(),
                 doc=""):
        super().__init__(name, numpy=numpy, vjp=vjp, static=static, doc=doc)
        if (code is None) == (scalar is None):
            raise ValueError(f"elementwise op {name}: give exactly one of code= and scalar=")
        self.code, self.scalar, self.dtype = code, scalar, dtype

    def result_dtype(self, dtypes) -> np.dtype:
        dt = np.result_type(*dtypes)
        if self.dtype == "bool":
            return np.dtype(np.bool_)
        if self.dtype == "real":
            return np.finfo(dt).dtype if dt.kind in "fc" else np.dtype(np.float64)
        if self.dtype == "float" and dt.kind in "biu":
            return np.dtype(np.float64)
        return dt

    def _functions(self):
        return (self.scalar,) if self.scalar is not None else ()


class CallOp(Op):
    """An operation on whole arrays, computed by the Numba function `kernel`.  `shape(operands,
    **params)` gives a list of (shape, dtype), one per result; `numpy(*values, **params)` the
    results (a tuple when there are several)."""

    def __init__(self, name, *, numpy, kernel, shape, vjp=(), static=(), doc="", jvp=()):
        super().__init__(name, numpy=numpy, vjp=vjp, static=static, doc=doc, jvp=jvp)
        self.kernel, self.shape = kernel, shape

    def _functions(self):
        return (self.kernel,)


def elementwise_op(name, **facts) -> ElementwiseOp:
    return ElementwiseOp(name, **facts)


def call_op(name, **facts) -> CallOp:
    return CallOp(name, **facts)


def apply(op: Op, *operands, **params):
    """Apply `op`: a statement of the active trace if an operand is traced, else NumPy's value.
    A `call` op with several results returns a tuple."""
    from .primitives import Prim
    from .trace import bind, bind_multi

    if isinstance(op, ElementwiseOp):
        return bind(Prim.elementwise, *operands, op=op, **params)
    outs = bind_multi(Prim.call, *operands, op=op, **params)
    return outs[0] if len(outs) == 1 else outs


def not_differentiable(name: str, operand: str):
    """A VJP rule for an operand jitgrad cannot differentiate with respect to: a clear error."""
    def rule(*args, **params):
        raise TracingError(f"jitgrad cannot differentiate {name} with respect to its {operand}")

    return rule
