"""`import jitgrad.numpy as np`: NumPy's API, traced.

Every function here works on plain arrays too (it computes with NumPy), so a loss written with it
can be called directly.  Functions that jitgrad cannot trace yet still work on plain arrays and
raise a clear error when given a traced value; NumPy's constants, dtypes and submodules
(`np.pi`, `np.float64`, `np.random`, ...) are NumPy's own.  `SUPPORTED` lists what traces, and
docs/numpy.md lists it with every other module's (it is made from `jitgrad.ops.REGISTRY`).

The functions live in one file per family; this module only gathers them:
    _base.py        arithmetic, comparisons, exp/log/trig, sum/max/min, reshape/transpose,
                    basic indexing, 2-D matrix products (the core primitives, one to one)
    _ufuncs.py      the rest of NumPy's elementwise functions
    _reductions.py  prod, var, std, cumsum, average, ...
    _arrays.py      array of traced lists, concatenate, stack, split, tile, roll, flip, ...,
                    and indexing with integer arrays and boolean masks (gather, scatter-add)
    _shapes.py      more shape functions (pad, sort, ...), overriding _arrays' where both
    _indexing.py    integer-array and boolean-mask indexing (gather, and scatter-add adjoints)
    _products.py    einsum, tensordot, batched matmul, outer, kron, trace, diag, ...
    linalg.py, fft.py, random.py   the submodules of the same names
"""

import importlib as _importlib

import numpy as _onp

from ._base import SUPPORTED, _getitem  # noqa: F401  (Tracer.__getitem__ calls _getitem)
from ._fallback import module_getattr as _module_getattr

for _family in ("_ufuncs", "_reductions", "_arrays", "_shapes", "_indexing", "_products"):
    try:
        _importlib.import_module(f"{__name__}.{_family}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_family}":
            raise

from . import fft, linalg, random  # noqa: E402,F401

globals().update(SUPPORTED)
_FALLBACKS: dict = {}
__getattr__ = _module_getattr("numpy", _onp, _FALLBACKS)
