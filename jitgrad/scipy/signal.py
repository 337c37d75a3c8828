"""`jitgrad.scipy.signal`: `convolve`, with autograd's generalization (`axes`, `dot_axes`) and
its derivatives.  Every other name is SciPy's own (plain arrays only)."""

from __future__ import annotations

import numpy as onp
import scipy.signal as _signal

import jitgrad.numpy as np

from .. import _jit
from .._jit import NUMBA as numba
from ..errors import ShapeError, TracingError
from ..ops import REGISTRY, apply, call_op, export
from ..trace import Tracer, user_frame

SUPPORTED: dict = REGISTRY.setdefault("scipy.signal", {})

# The one op: out[p, q, k] = sum_d sum_{i + j = k + lo} a[p, d, i] b[q, d, j] over three
# convolved axes (k, i, j are 3-index), k in [0, size): a window, starting at `lo`, of the full
# convolution of every a[p] with every b[q], contracted over d.  Full, valid and same modes are
# windows of it, and so are both of its derivatives (convolutions of g with flipped operands).
#
# It is computed with NumPy in both tiers (the kernel calls it back), by one of three plans, the
# one whose loop is shortest and whose products go to BLAS:
#   - windows (im2col): every window of a the size of b, side by side, times b: one matrix
#     product (in row chunks), for a small b and more output channels than input ones (a layer's
#     forward pass);
#   - b's offsets: for each offset j of b, add a's shifted window times b[:, :, j] (a layer's
#     gradient with respect to its input: few output channels, many input ones);
#   - the output's offsets: when the window is smaller than both operands (a layer's gradient
#     with respect to its filters), each output offset k is one contraction over d and the
#     overlap of a with b shifted by k.
# A plan computes only the window asked for, never the full convolution around it.

_CHUNK_BYTES = 1 << 25  # the windows plan copies at most this much of a at a time


def _conv_numpy(a, b, lo, size):
    n, m, size = a.shape[2:], b.shape[2:], tuple(size)
    if onp.prod(size) <= min(onp.prod(n), onp.prod(m)):
        return _conv_by_output_offsets(a, b, lo, size)
    if onp.prod(n) < onp.prod(m):  # the sum is symmetric in a and b: loop over the smaller
        return onp.ascontiguousarray(_conv_numpy(b, a, lo, size).transpose(1, 0, 2, 3, 4))
    if b.shape[0] >= b.shape[1]:
        return _conv_by_windows(a, b, lo, size)
    return _conv_by_filter_offsets(a, b, lo, size)


def _conv_by_windows(a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    # With b flipped, out[p, q, k] = sum_{d, j} a_padded[p, d, k + j + start] b_flipped[q, d, j].
    pads = [(max(0, mm - 1 - ll), max(0, ss + ll - nn)) for nn, mm, ll, ss in zip(n, m, lo, size)]
    if any(p != (0, 0) for p in pads):
        a = onp.pad(a, [(0, 0), (0, 0)] + pads)
    starts = [ll - mm + 1 + before for ll, mm, (before, _) in zip(lo, m, pads)]
    windows = onp.lib.stride_tricks.sliding_window_view(a, m, axis=(2, 3, 4))
    windows = windows[(slice(None), slice(None))
                      + tuple(slice(s, s + ss) for s, ss in zip(starts, size))]
    b_flipped = _flip(b)
    out = onp.empty(a.shape[:1] + b.shape[:1] + size, onp.result_type(a, b))
    rows = max(1, _CHUNK_BYTES // max(1, windows[:1].size * a.itemsize))
    for p in range(0, a.shape[0], rows):
        product = onp.tensordot(windows[p:p + rows], b_flipped, axes=([1, 5, 6, 7], [1, 2, 3, 4]))
        out[p:p + rows] = product.transpose(0, 4, 1, 2, 3)
    return out


def _conv_by_filter_offsets(a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    out = onp.zeros(a.shape[:1] + b.shape[:1] + size, onp.result_type(a, b))
    for j in onp.ndindex(*m):
        dst, src = [slice(None)] * 2, [slice(None)] * 2
        for jj, ll, nn, ss in zip(j, lo, n, size):
            shift = ll - jj  # a's index for output index k is k + shift
            k0, k1 = max(0, -shift), min(ss, nn - shift)
            if k1 <= k0:
                break
            dst.append(slice(k0, k1))
            src.append(slice(k0 + shift, k1 + shift))
        else:
            out[tuple(dst)] += onp.einsum("pdxyz,qd->pqxyz", a[tuple(src)],
                                          b[(slice(None), slice(None)) + j])
    return out


def _conv_by_output_offsets(a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    out = onp.zeros(a.shape[:1] + b.shape[:1] + size, onp.result_type(a, b))
    b_flipped = _flip(b)
    for k in onp.ndindex(*size):
        src_a, src_b = [slice(None)] * 2, [slice(None)] * 2
        for kk, ll, nn, mm in zip(k, lo, n, m):
            total = kk + ll  # i + j = total; b_flipped's index m - 1 - j = i + shift
            i0, i1 = max(0, total - mm + 1), min(nn, total + 1)
            if i1 <= i0:
                break
            shift = mm - 1 - total
            src_a.append(slice(i0, i1))
            src_b.append(slice(i0 + shift, i1 + shift))
        else:
            out[(slice(None), slice(None)) + k] = onp.tensordot(
                a[tuple(src_a)], b_flipped[tuple(src_b)], axes=([1, 2, 3, 4], [1, 2, 3, 4]))
    return out


def _conv_py(a, b, lo, size):
    return _conv_numpy(a, b, tuple(lo), tuple(size))


@_jit.njit(cache=True)
def _conv_kernel_f8(a, b, lo, size):
    with numba.objmode(out="float64[:, :, :, :, ::1]"):
        out = _conv_py(a, b, lo, size)
    return out


@_jit.njit(cache=True)
def _conv_kernel_f4(a, b, lo, size):
    with numba.objmode(out="float32[:, :, :, :, ::1]"):
        out = _conv_py(a, b, lo, size)
    return out


def _flip(x):
    return x[:, :, ::-1, ::-1, ::-1]


def _vjp_a(g, ans, a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    return _conv(g, np.transpose(_flip(b), (1, 0, 2, 3, 4)),
                 lo=tuple(mm - 1 - ll for mm, ll in zip(m, lo)), size=tuple(n))


def _vjp_b(g, ans, a, b, lo, size):
    n, m = a.shape[2:], b.shape[2:]
    return _conv(np.transpose(g, (1, 0, 2, 3, 4)), np.transpose(_flip(a), (1, 0, 2, 3, 4)),
                 lo=tuple(nn - 1 - ll for nn, ll in zip(n, lo)), size=tuple(m))


def _conv_op(dtype, kernel):
    return call_op(
        f"convolve_{dtype}", numpy=_conv_numpy, kernel=kernel, static=("lo", "size"),
        shape=lambda a, b, lo, size: [((a.shape[0], b.shape[0]) + tuple(size), a.dtype)],
        vjp=(_vjp_a, _vjp_b))


_CONV = {onp.dtype(onp.float64): _conv_op("float64", _conv_kernel_f8),
         onp.dtype(onp.float32): _conv_op("float32", _conv_kernel_f4)}


def _conv(a, b, lo, size):
    return apply(_CONV[onp.dtype(a.dtype)], a, b, lo=lo, size=size)


def _shape(x):
    return x.shape if isinstance(x, Tracer) else onp.shape(x)


@export("scipy.signal")
def convolve(A, B, axes=None, dot_axes=((), ()), mode="full"):  # noqa: N803
    """scipy.signal.convolve(A, B, mode) ("full", "valid", "same"), generalized as in autograd:
    `axes=(A's axes, B's axes)` are convolved (all, by default), `dot_axes` are summed over, and
    the result's axes are A's others, B's others, then the convolved ones.  At most 3 convolved
    axes; float64 or float32 arrays.  Computed with NumPy and BLAS (a matrix product of the
    windows, or a loop over the smaller set of offsets), also inside compiled kernels."""
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
    if onp.dtype(A.dtype) not in _CONV:
        raise TracingError(f"scipy.signal.convolve: operands of dtype {A.dtype}: it convolves "
                           f"float64 and float32 arrays (at {user_frame()})")
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
    out = _conv(a5, b5, lo=tuple(lo + [0] * len(pad)), size=tuple(size + pad))
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
