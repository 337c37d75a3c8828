"""`jitgrad.numpy.fft`: NumPy's `numpy.fft`, traced where `SUPPORTED` says; every other name
is NumPy's own (it works on plain arrays and raises a clear error on traced ones)."""

import numpy.fft as _np_fft

from ..ops import REGISTRY as _REGISTRY
from ._fallback import module_getattr as _module_getattr

SUPPORTED: dict = _REGISTRY.setdefault("numpy.fft", {})

__getattr__ = _module_getattr("numpy.fft", _np_fft, {})
