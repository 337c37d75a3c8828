"""Numba functions that generated kernels call: compiled once per process (and cached on disk
next to this file), instead of once per kernel.  Typing `np.dot` inside a kernel costs about a
second of compile time; calling this already-compiled `matmul` costs a link."""

import warnings

import numba
import numpy as np

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
