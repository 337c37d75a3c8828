"""Numba functions that generated kernels call: compiled once per process (and cached on disk
next to this file), instead of once per kernel.  Typing `np.dot` inside a kernel costs about a
second of compile time; calling this already-compiled `matmul` costs a link.

Only generated kernels import this module (after `_jit.ready()` has imported Numba)."""

import ctypes
import importlib
import os
import warnings

import llvmlite.binding as llvm_binding
from llvmlite import ir as llvm_ir

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


# Parallel nests (codegen's numba.prange) ask `threads_ok()` first, and run their chunks on the
# calling thread when it says no: in every forked child (one forked from a process that has used
# GNU OpenMP would abort when it starts them again), and where the threading layer Numba would
# pick may not be entered from several threads at once (workqueue).  The flag is a C int that
# kernels read by its symbol's name, so that they stay cacheable (a pointer would not be).
# The thread-safe layers Numba may pick, by its setting (NUMBA_THREADING_LAYER).
_SAFE_LAYERS = {"default": ("tbbpool", "omppool"), "threadsafe": ("tbbpool", "omppool"),
                "tbb": ("tbbpool",), "omp": ("omppool",), "safe": ("tbbpool",),
                "forksafe": ("tbbpool",)}


def _layer_is_threadsafe() -> bool:
    for pool in _SAFE_LAYERS.get(str(numba.config.THREADING_LAYER).lower(), ()):
        try:
            importlib.import_module(f"numba.np.ufunc.{pool}")
            return True
        except ImportError:
            continue
    return False


_THREADS_OK = ctypes.c_int(int(_layer_is_threadsafe()))
llvm_binding.add_symbol("jitgrad_threads_ok", ctypes.addressof(_THREADS_OK))


def _no_threads_after_fork():
    _THREADS_OK.value = 0


os.register_at_fork(after_in_child=_no_threads_after_fork)


@intrinsic
def threads_ok(typingctx):
    """May this call of a kernel start Numba's threads (a parallel nest's prange)?"""
    def codegen(context, builder, sig, args):
        flag = builder.module.globals.get("jitgrad_threads_ok")
        if flag is None:
            flag = llvm_ir.GlobalVariable(builder.module, llvm_ir.IntType(32),
                                          "jitgrad_threads_ok")
            flag.linkage = "external"
        return builder.icmp_signed("!=", builder.load(flag), llvm_ir.Constant(flag.type.pointee, 0))

    return nbtypes.boolean(), codegen


# glibc gives a freed block of 128 kB or more back to the kernel (munmap, or trimming the top of
# the heap), and the next call's array of that size is then faulted in again page by page: a
# gradient of a 784-512-10 MLP at batch 256 took 7.0 ms, 4.9 ms when its 1-3 MB arrays stay in
# the heap (the page faults were a third of the call on this VM).  NumPy itself asks for huge
# pages for its large arrays; Numba's allocator does not.  So once jitgrad runs native code, blocks
# under MALLOC_MMAP_BYTES come from the heap, and up to MALLOC_TRIM_BYTES of free heap is kept.
# A process whose own MALLOC_* settings are in the environment keeps them; JITGRAD_MALLOC_TUNE=0
# leaves glibc's defaults.
MALLOC_MMAP_BYTES = 16 << 20
MALLOC_TRIM_BYTES = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds as above; whether they were set."""
    if os.environ.get("JITGRAD_MALLOC_TUNE", "1").strip().lower() in ("0", "false", "no"):
        return False
    if any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_BYTES))
