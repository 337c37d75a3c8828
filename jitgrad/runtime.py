"""Numba functions that generated kernels call: compiled once per process (and cached on disk
next to this file), instead of once per kernel.  Typing `np.dot` inside a kernel costs about a
second of compile time; calling this already-compiled `matmul` costs a link.

Only generated kernels import this module (after `_jit.ready()` has imported Numba)."""

import warnings

import numba
import numpy as np
from numba import types as nbtypes
from numba.core.extending import intrinsic

from .compile import fail_soft
from .errors import JitgradWarning


def matmul(a, b):
    return np.dot(a, b)


try:
    matmul = numba.njit(cache=True, nogil=True)(matmul)
except RuntimeError as e:  # no writable cache location: neither __pycache__ nor ~/.cache/numba
    warnings.warn(f"jitgrad's matrix product is compiled uncached in every process ({e})",
                  JitgradWarning, stacklevel=2)
    matmul = numba.njit(nogil=True)(matmul)
fail_soft(matmul)  # an unreadable cache entry (truncated, garbage) is recompiled, not an error


@intrinsic
def sum_add(typingctx, acc, v):
    """`acc + v` for a float sum's accumulator: the one addition of a kernel with the `reassoc`
    flag, because LLVM vectorises a floating-point reduction only if it may reorder its additions.
    Reordering a sum changes its rounding, never whether an inf or nan among the terms reaches the
    result.  (An intrinsic, not a function with fastmath: it costs no compile of its own.)"""
    if not (isinstance(acc, nbtypes.Float) and isinstance(v, nbtypes.Float)):
        return None
    out = acc if acc.bitwidth >= v.bitwidth else v

    def codegen(context, builder, sig, args):
        a, b = (context.cast(builder, x, t, out) for x, t in zip(args, sig.args))
        return builder.fadd(a, b, flags=("reassoc", "contract"))

    return out(acc, v), codegen
