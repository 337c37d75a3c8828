"""Numba functions that generated kernels call: compiled once per process (and cached on disk
next to this file), instead of once per kernel.  Typing `np.dot` inside a kernel costs about a
second of compile time; calling this already-compiled `matmul` costs a link."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def matmul(a, b):
    return np.dot(a, b)
