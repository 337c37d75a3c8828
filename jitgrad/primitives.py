"""The primitives: one enum, grouped by what the later stages may do with them, plus the two
tables every stage shares: a shape/dtype rule and a NumPy implementation per primitive.

The NumPy implementations serve three purposes: constant folding while tracing, the reference
interpreter (`interpret.py`) that tests use as the oracle for compiled code, and documentation of
each primitive's exact meaning.
"""

from __future__ import annotations

import enum

import numpy as np

from .errors import JitgradInternalError, ShapeError
from .ir import Lit, Span, Var

FLOAT = np.dtype(np.float64)
BOOL = np.dtype(np.bool_)
INT = np.dtype(np.int64)


class Prim(enum.Enum):
    # Members are singletons, compared by identity: hash them so too (Enum's own __hash__ is
    # Python code, and every shape rule asks `prim in SOME_SET` a few times).
    __hash__ = object.__hash__

    # elementwise, one operand
    neg = enum.auto()
    exp = enum.auto()
    log = enum.auto()
    log1p = enum.auto()
    expm1 = enum.auto()
    sqrt = enum.auto()
    sin = enum.auto()
    cos = enum.auto()
    tan = enum.auto()
    tanh = enum.auto()
    sinh = enum.auto()
    cosh = enum.auto()
    arcsin = enum.auto()
    arccos = enum.auto()
    arctan = enum.auto()
    abs = enum.auto()
    sign = enum.auto()
    convert = enum.auto()  # params: dtype
    # elementwise, two operands (NumPy broadcasting between them)
    add = enum.auto()
    sub = enum.auto()
    mul = enum.auto()
    div = enum.auto()
    pow = enum.auto()
    maximum = enum.auto()
    minimum = enum.auto()
    lt = enum.auto()
    le = enum.auto()
    gt = enum.auto()
    ge = enum.auto()
    eq = enum.auto()
    ne = enum.auto()
    # elementwise, three operands
    where = enum.auto()
    # reductions; params: axes (sorted tuple), keepdims
    reduce_sum = enum.auto()
    reduce_max = enum.auto()
    reduce_min = enum.auto()
    # shape changes that move no data: code generation turns them into index arithmetic
    broadcast_to = enum.auto()  # params: shape
    slice = enum.auto()  # params: index, a tuple of Span (kept dim) or int (dropped dim) per dim
    transpose = enum.auto()  # params: perm
    reshape = enum.auto()  # params: shape
    # creation and accumulation
    full = enum.auto()  # params: shape, value, dtype; no operands
    add_into = enum.auto()  # (base, g), params: index. base with g added at base[index]
    # linear algebra
    matmul = enum.auto()  # 2-D @ 2-D; tracing reshapes the 1-D cases
    # control flow: statements holding regions (graphs) in their params; several results each
    while_loop = enum.auto()  # (cond consts, body consts, init); params: cond, body, save
    scan = enum.auto()  # (consts, xs, length, init): a loop over the rows of xs; params: body, ...
    cond = enum.auto()  # (pred, operands); params: true, false (graphs over the operands)
    # the families' operations (ops.py): params: op, and the op's own
    elementwise = enum.auto()  # fuses: a function of its operands' elements
    call = enum.auto()  # a Numba function on whole arrays, between loop nests; several results


UNARY = frozenset({
    Prim.neg, Prim.exp, Prim.log, Prim.log1p, Prim.expm1, Prim.sqrt, Prim.sin, Prim.cos, Prim.tan,
    Prim.tanh, Prim.sinh, Prim.cosh, Prim.arcsin, Prim.arccos, Prim.arctan, Prim.abs, Prim.sign,
    Prim.convert,
})
COMPARE = frozenset({Prim.lt, Prim.le, Prim.gt, Prim.ge, Prim.eq, Prim.ne})
BINARY = frozenset({
    Prim.add, Prim.sub, Prim.mul, Prim.div, Prim.pow, Prim.maximum, Prim.minimum,
}) | COMPARE
ELEMENTWISE = UNARY | BINARY | {Prim.where, Prim.elementwise}
REDUCE = frozenset({Prim.reduce_sum, Prim.reduce_max, Prim.reduce_min})
# Moves no data: fused loops read through these by rewriting indices.
VIEW = frozenset({Prim.broadcast_to, Prim.slice, Prim.transpose, Prim.reshape})
# Statements with regions and several results: defined in control.py, compiled as calls.
CONTROL = frozenset({Prim.while_loop, Prim.scan, Prim.cond})
# Statements whose results are a tuple (bind_multi), however many there are.
MULTI = CONTROL | {Prim.call}
# Everything a fused loop body can compute for one element.
FUSIBLE = ELEMENTWISE | VIEW
# Operations that keep float results floating and have float results from integer operands.
_FLOAT_RESULT = UNARY - {Prim.neg, Prim.abs, Prim.sign, Prim.convert}

# ------------------------------------------------------------------------------------------------
# Shape and dtype rules
# ------------------------------------------------------------------------------------------------


def broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting rule (in Python: `np.broadcast_shapes` costs 2 µs a statement)."""
    ndim = max(map(len, shapes))
    out = []
    for d in range(ndim):
        size = 1
        for shape in shapes:
            k = len(shape) - ndim + d
            if k >= 0 and shape[k] != 1:
                if size != 1 and size != shape[k]:
                    listed = " and ".join(str(tuple(s)) for s in shapes)
                    raise ShapeError(f"{op}: operands could not be broadcast together with "
                                     f"shapes {listed}")
                size = shape[k]
        out.append(int(size))
    return tuple(out)


def result_dtype(*atoms) -> np.dtype:
    # Python scalars are "weak" (NEP 50): 2.0 * int_array is float64, 2 * float32_array float32.
    return np.result_type(*(a.value if isinstance(a, Lit) else a.dtype for a in atoms))


def reduced_shape(shape, axes, keepdims) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def slice_shape(index) -> tuple[int, ...]:
    return tuple(i.count for i in index if isinstance(i, Span))


def infer(prim: Prim, inputs, params) -> list[tuple[tuple[int, ...], np.dtype]]:
    """The (shape, dtype) of each output of `prim` applied to `inputs`."""
    shapes = [a.shape for a in inputs]
    if prim in UNARY:
        (x,) = inputs
        if prim is Prim.convert:
            return [(x.shape, np.dtype(params["dtype"]))]
        dt = result_dtype(x)
        if prim in _FLOAT_RESULT and dt.kind in "biu":
            dt = FLOAT
        if prim is Prim.abs and dt.kind == "c":
            dt = np.finfo(dt).dtype  # |z| is real
        return [(x.shape, dt)]
    if prim in BINARY:
        shape = broadcast_shapes(prim.name, *shapes)
        if prim in COMPARE:
            return [(shape, BOOL)]
        dt = result_dtype(*inputs)
        if prim is Prim.div and dt.kind in "biu":
            dt = FLOAT
        return [(shape, dt)]
    if prim is Prim.where:
        return [(broadcast_shapes("where", *shapes), result_dtype(*inputs[1:]))]
    if prim is Prim.elementwise:
        op = params["op"]
        dtypes = [a.value if isinstance(a, Lit) else a.dtype for a in inputs]
        return [(broadcast_shapes(op.name, *shapes), op.result_dtype(dtypes))]
    if prim is Prim.call:
        op = params["op"]
        rest = {k: v for k, v in params.items() if k != "op"}
        return [(tuple(int(n) for n in shape), np.dtype(dtype))
                for shape, dtype in op.shape(*inputs, **rest)]
    if prim in REDUCE:
        (x,) = inputs
        dt = x.dtype
        if prim is Prim.reduce_sum and (dt.kind == "b" or dt.kind in "iu" and dt.itemsize < 8):
            dt = INT if dt.kind in "bi" else np.dtype(np.uint64)  # as NumPy's sum
        return [(reduced_shape(x.shape, params["axes"], params["keepdims"]), dt)]
    if prim is Prim.broadcast_to:
        broadcast_shapes("broadcast_to", shapes[0], params["shape"])
        return [(tuple(params["shape"]), inputs[0].dtype)]
    if prim is Prim.slice:
        return [(slice_shape(params["index"]), inputs[0].dtype)]
    if prim is Prim.transpose:
        return [(tuple(shapes[0][p] for p in params["perm"]), inputs[0].dtype)]
    if prim is Prim.reshape:
        if np.prod(params["shape"], dtype=np.int64) != np.prod(shapes[0], dtype=np.int64):
            raise ShapeError(f"reshape: cannot reshape an array of shape {shapes[0]} into "
                             f"shape {params['shape']}")
        return [(tuple(params["shape"]), inputs[0].dtype)]
    if prim is Prim.full:
        return [(tuple(params["shape"]), np.dtype(params["dtype"]))]
    if prim is Prim.add_into:
        base, g = inputs
        region = slice_shape(params["index"])
        if tuple(g.shape) != region:
            raise ShapeError(f"add_into: update of shape {g.shape} for a region of shape {region}")
        return [(base.shape, base.dtype)]
    if prim in CONTROL:
        return CONTROL_RULES[prim](inputs, params)
    if prim is Prim.matmul:
        (m, k), (k2, n) = shapes
        if k != k2:
            raise ShapeError(f"matmul: shapes {shapes[0]} and {shapes[1]} are not aligned "
                             f"({k} != {k2})")
        return [((m, n), result_dtype(*inputs))]
    raise JitgradInternalError(f"no shape rule for {prim}")


# ------------------------------------------------------------------------------------------------
# NumPy implementations
# ------------------------------------------------------------------------------------------------


def numpy_index(index) -> tuple:
    return tuple(i.to_slice() if isinstance(i, Span) else i for i in index)


def _add_into(base, g, *, index):
    out = np.array(base, copy=True)
    out[numpy_index(index)] += g
    return out


def _where(c, a, b):
    return np.where(c, a, b)


IMPL = {
    Prim.neg: np.negative, Prim.exp: np.exp, Prim.log: np.log, Prim.log1p: np.log1p,
    Prim.expm1: np.expm1, Prim.sqrt: np.sqrt, Prim.sin: np.sin, Prim.cos: np.cos,
    Prim.tan: np.tan, Prim.tanh: np.tanh, Prim.sinh: np.sinh, Prim.cosh: np.cosh,
    Prim.arcsin: np.arcsin, Prim.arccos: np.arccos, Prim.arctan: np.arctan, Prim.abs: np.abs,
    Prim.sign: np.sign,
    Prim.convert: lambda x, *, dtype: np.asarray(x).astype(dtype),
    Prim.add: np.add, Prim.sub: np.subtract, Prim.mul: np.multiply, Prim.div: np.true_divide,
    Prim.pow: np.power, Prim.maximum: np.maximum, Prim.minimum: np.minimum,
    Prim.lt: np.less, Prim.le: np.less_equal, Prim.gt: np.greater, Prim.ge: np.greater_equal,
    Prim.eq: np.equal, Prim.ne: np.not_equal,
    Prim.where: _where,
    Prim.reduce_sum: lambda x, *, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims),
    Prim.reduce_max: lambda x, *, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims),
    Prim.reduce_min: lambda x, *, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims),
    Prim.broadcast_to: lambda x, *, shape: np.broadcast_to(x, shape),
    Prim.slice: lambda x, *, index: np.asarray(x)[numpy_index(index)],
    Prim.transpose: lambda x, *, perm: np.transpose(x, perm),
    Prim.reshape: lambda x, *, shape: np.reshape(x, shape),
    Prim.full: lambda *, shape, value, dtype: np.full(shape, value, dtype),
    Prim.add_into: _add_into,
    Prim.matmul: np.matmul,
    Prim.elementwise: lambda *values, op, **params: op.numpy(*values, **params),
    Prim.call: lambda *values, op, **params: _as_tuple(op.numpy(*values, **params)),
}


def _as_tuple(results) -> tuple:
    return tuple(results) if isinstance(results, (tuple, list)) else (results,)


# Filled in by control.py: shape rules for control-flow statements (they read their regions).
CONTROL_RULES: dict = {}


def apply_numpy(prim: Prim, values, params):
    """Evaluate one primitive on concrete values (arrays or Python scalars)."""
    return IMPL[prim](*values, **params)


def check_tables() -> None:
    missing = [p for p in Prim if p not in IMPL]
    if missing:
        raise JitgradInternalError(f"primitives without a NumPy implementation: {missing}")


__all__ = ["Prim", "infer", "apply_numpy", "Var", "Lit"]
