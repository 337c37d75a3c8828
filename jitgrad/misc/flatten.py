"""`flatten(value)`: a nest of tuples, lists and dicts of arrays and numbers as one 1-D float
array, and the function that rebuilds the nest from such an array (autograd.misc.flatten).

`unflatten` is written with jitgrad.numpy (slices and reshapes), so it also works on a traced
vector: `grad(lambda v: loss(unflatten(v)))(vector)` differentiates through it.  Dict entries
are taken in sorted key order, as autograd does."""

from __future__ import annotations

import numpy as _onp

from .. import numpy as jnp
from ..ir import Span
from ..primitives import Prim
from ..trace import Tracer, bind, full


def _leaves(value, out: list) -> object:
    """Append the leaves of `value` to `out`; return its structure."""
    t = type(value)
    if t in (list, tuple):
        return (t, [_leaves(v, out) for v in value])
    if t is dict:
        keys = sorted(value)
        return (dict, keys, [_leaves(value[k], out) for k in keys])
    out.append(value)
    return ("leaf", _onp.shape(value), isinstance(value, (_onp.ndarray, Tracer)))


def _concatenate(parts):
    """1-D pieces, traced or not, end to end: each written into its span of a new array (the
    adjoint of each is a slice)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [int(_onp.size(p)) for p in parts]
    dtype = _onp.result_type(*[p.dtype if isinstance(p, Tracer) else _onp.asarray(p).dtype
                               for p in parts], _onp.float64)
    out, start = full((sum(sizes),), 0.0, dtype), 0
    for part, size in zip(parts, sizes):
        if size:
            out = bind(Prim.add_into, out, part, index=(Span(start, 1, size),))
        start += size
    return out


def flatten(value):
    """(1-D float array of every leaf, raveled and concatenated; the inverse function)."""
    leaves: list = []
    structure = _leaves(value, leaves)
    if any(isinstance(v, Tracer) for v in leaves):
        parts = [jnp.reshape(v, (-1,)) if isinstance(v, Tracer) else _onp.ravel(v)
                 for v in leaves]
        flat = _concatenate(parts)
    else:
        parts = [_onp.ravel(_onp.asarray(v, dtype=float)) for v in leaves]
        flat = _onp.concatenate(parts) if parts else _onp.zeros(0)

    def unflatten(vector):
        position = [0]

        def build(node):
            if node[0] == "leaf":
                _, shape, is_array = node
                size = int(_onp.prod(shape, dtype=_onp.int64))
                start = position[0]
                position[0] += size
                if not is_array:
                    return vector[start]  # a number: a (NumPy or traced) scalar
                return jnp.reshape(vector[start:start + size], shape)
            if node[0] is dict:
                return {k: build(c) for k, c in zip(node[1], node[2])}
            return node[0](build(c) for c in node[1])

        return build(structure)

    return flat, unflatten


def flatten_func(func, example):
    """(func of a flat vector, unflatten, the flattened example), as autograd's."""
    flat_example, unflatten = flatten(example)

    def flat_func(flat, *args):
        return flatten(func(unflatten(flat), *args))[0]

    return flat_func, unflatten, flat_example
