"""`jitgrad.numpy.linalg`: NumPy's `numpy.linalg`, traced where `SUPPORTED` says; every other name
is NumPy's own (it works on plain arrays and raises a clear error on traced ones)."""

import numpy.linalg as _np_linalg

from ..ops import REGISTRY as _REGISTRY
from ._fallback import module_getattr as _module_getattr

SUPPORTED: dict = _REGISTRY.setdefault("numpy.linalg", {})

__getattr__ = _module_getattr("numpy.linalg", _np_linalg, {})
