"""`jitgrad.scipy.signal`: `convolve`, with autograd's generalization (`axes`, `dot_axes`) and
its derivatives.  Every other name is SciPy's own (plain arrays only)."""

from __future__ import annotations

import numpy as onp
import scipy.signal as _signal

import jitgrad.numpy as np

from .. import _jit
from ..errors import ShapeError, TracingError
from ..ops import REGISTRY, apply, call_op, export
from ..trace import Tracer, user_frame

SUPPORTED: dict = REGISTRY.setdefault("scipy.signal", {})

# The one op: out[p, q, k] = sum_d sum_{i + j = k + lo} a[p, d, i] b[q, d, j] over three
# convolved axes (k, i, j are 3-index), k in [0, size): a window, starting at `lo`, of the full
# convolution of every a[p] with every b[q], contracted over d.  Full, valid and same modes are
# windows of it, and so are both of its derivatives (convolutions of g with flipped operands).


@_jit.njit(cache=True, nogil=True)
def _conv_kernel(a, b, lo, size):
    P, D, n1, n2, n3 = a.shape
    Q, _, m1, m2, m3 = b.shape
    out = onp.zeros((P, Q, size[0], size[1], size[2]), dtype=a.dtype)
    for p in range(P):
        for q in range(Q):
            for k1 in range(size[0]):
                K1 = k1 + lo[0]
                for k2 in range(size[1]):
                    K2 = k2 + lo[1]
                    for k3 in range(size[2]):
                        K3 = k3 + lo[2]
                        acc = 0.0
                        for d in range(D):
                            for i1 in range(max(0, K1 - m1 + 1), min(n1, K1 + 1)):
                                for i2 in range(max(0, K2 - m2 + 1), min(n2, K2 + 1)):
                                    for i3 in range(max(0, K3 - m3 + 1), min(n3, K3 + 1)):
                                        acc += a[p, d, i1, i2, i3] * b[q, d, K1 - i1, K2 - i2,
                                                                       K3 - i3]
                        out[p, q, k1, k2, k3] = acc
    return out


def _conv_numpy(a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    full = onp.zeros(a.shape[:1] + b.shape[:1] + tuple(x + y - 1 for x, y in zip(n, m)),
                     onp.result_type(a, b))
    for j in onp.ndindex(*m):
        window = (slice(None), slice(None)) + tuple(slice(jj, jj + nn) for jj, nn in zip(j, n))
        full[window] += onp.einsum("pdxyz,qd->pqxyz", a, b[(slice(None), slice(None)) + j])
    out = onp.zeros(full.shape[:2] + tuple(size), full.dtype)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for start, count, total in zip(lo, size, full.shape[2:]):
        s0, s1 = max(start, 0), min(start + count, total)
        if s1 <= s0:
            return out
        src.append(slice(s0, s1))
        dst.append(slice(s0 - start, s1 - start))
    out[tuple(dst)] = full[tuple(src)]
    return out


def _flip(x):
    return x[:, :, ::-1, ::-1, ::-1]


def _vjp_a(g, ans, a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    return apply(_conv, g, np.transpose(_flip(b), (1, 0, 2, 3, 4)),
                 lo=tuple(mm - 1 - ll for mm, ll in zip(m, lo)), size=tuple(n))


def _vjp_b(g, ans, a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    return apply(_conv, np.transpose(g, (1, 0, 2, 3, 4)), np.transpose(_flip(a), (1, 0, 2, 3, 4)),
                 lo=tuple(nn - 1 - ll for nn, ll in zip(n, lo)), size=tuple(m))


_conv = call_op(
    "convolve", numpy=_conv_numpy, kernel=_conv_kernel, static=("lo", "size"),
    shape=lambda a, b, lo, size: [((a.shape[0], b.shape[0]) + tuple(size), a.dtype)],
    vjp=(_vjp_a, _vjp_b))


def _shape(x):
    return x.shape if isinstance(x, Tracer) else onp.shape(x)


@export("scipy.signal")
def convolve(A, B, axes=None, dot_axes=((), ()), mode="full"):  # noqa: N803
    """scipy.signal.convolve(A, B, mode) ("full", "valid", "same"), direct method, generalized as
    in autograd: `axes=(A's axes, B's axes)` are convolved (all, by default), `dot_axes` are
    summed over, and the result's axes are A's others, B's others, then the convolved ones.  At
    most 3 convolved axes; real arrays."""
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"scipy.signal.convolve: mode {mode!r}: it can be 'full', 'valid' or "
                         f"'same'")
    if not isinstance(A, Tracer):
        A = onp.asarray(A, dtype=onp.result_type(onp.asarray(A).dtype, onp.float64))
    if not isinstance(B, Tracer):
        B = onp.asarray(B, dtype=onp.result_type(onp.asarray(B).dtype, onp.float64))
    if A.dtype != B.dtype:
        raise TracingError(f"scipy.signal.convolve: operands of dtypes {A.dtype} and {B.dtype}: "
                           f"convert them to one dtype (at {user_frame()})")
    sa, sb = _shape(A), _shape(B)
    if axes is None:
        if len(sa) != len(sb):
            raise ShapeError(f"scipy.signal.convolve: A of shape {sa} and B of shape {sb} have "
                             f"different numbers of dimensions (at {user_frame()})")
        axes = (tuple(range(len(sa))), tuple(range(len(sb))))
    conv_a, conv_b = (tuple(int(i) % len(s) for i in ax) for ax, s in zip(axes, (sa, sb)))
    dot_a, dot_b = (tuple(int(i) % len(s) for i in ax) for ax, s in zip(dot_axes, (sa, sb)))
    if len(conv_a) != len(conv_b) or len(dot_a) != len(dot_b):
        raise ShapeError(f"scipy.signal.convolve: axes {axes} and dot_axes {dot_axes} must pair "
                         f"A's axes with as many of B's (at {user_frame()})")
    if len(conv_a) > 3:
        raise TracingError(f"scipy.signal.convolve: {len(conv_a)} convolved axes; at most 3 "
                           f"are supported (at {user_frame()})")
    if [sa[i] for i in dot_a] != [sb[i] for i in dot_b]:
        raise ShapeError(f"scipy.signal.convolve: dot_axes {dot_axes} have sizes "
                         f"{[sa[i] for i in dot_a]} in A (shape {sa}) and "
                         f"{[sb[i] for i in dot_b]} in B (shape {sb}) (at {user_frame()})")
    ignore_a = tuple(i for i in range(len(sa)) if i not in conv_a + dot_a)
    ignore_b = tuple(i for i in range(len(sb)) if i not in conv_b + dot_b)
    n, m = [sa[i] for i in conv_a], [sb[i] for i in conv_b]
    if mode == "full":
        lo, size = [0] * len(n), [x + y - 1 for x, y in zip(n, m)]
    elif mode == "valid":
        if not (all(x >= y for x, y in zip(n, m)) or all(x <= y for x, y in zip(n, m))):
            raise ValueError(f"scipy.signal.convolve: in 'valid' mode one array must be at least "
                             f"as large as the other along every convolved axis (sizes {n} and "
                             f"{m})")
        lo, size = [min(x, y) - 1 for x, y in zip(n, m)], [abs(x - y) + 1 for x, y in zip(n, m)]
    else:
        lo, size = [(y - 1) // 2 for y in m], list(n)
    pad = [1] * (3 - len(n))
    p = int(onp.prod([sa[i] for i in ignore_a], dtype=onp.int64))
    q = int(onp.prod([sb[i] for i in ignore_b], dtype=onp.int64))
    d = int(onp.prod([sa[i] for i in dot_a], dtype=onp.int64))
    a5 = np.reshape(np.transpose(A, ignore_a + dot_a + conv_a), (p, d, *n, *pad))
    b5 = np.reshape(np.transpose(B, ignore_b + dot_b + conv_b), (q, d, *m, *pad))
    out = apply(_conv, a5, b5, lo=tuple(lo + [0] * len(pad)), size=tuple(size + pad))
    return np.reshape(out, tuple(sa[i] for i in ignore_a) + tuple(sb[i] for i in ignore_b)
                      + tuple(size))


def __getattr__(name):
    """SciPy's other signal functions: their own, on plain arrays only."""
    fn = getattr(_signal, name)
    if not callable(fn) or isinstance(fn, type):
        return fn

    def on_plain_arrays(*args, **kwargs):
        if any(isinstance(a, Tracer) for a in list(args) + list(kwargs.values())):
            raise TracingError(f"scipy.signal.{name} is not supported on traced values (at "
                               f"{user_frame()})")
        return fn(*args, **kwargs)

    on_plain_arrays.__name__ = name
    on_plain_arrays.__doc__ = fn.__doc__
    return on_plain_arrays
