"""Helpers of the jitgrad.scipy.stats modules."""

from __future__ import annotations

import numpy as onp

import jitgrad.numpy as np

from ...ops import export
from ...trace import Tracer


def traced(*args) -> bool:
    return any(isinstance(a, Tracer) for a in args)


def exporter(module: str):
    return export(f"scipy.stats.{module}")


def standardize(x, loc, scale):
    """(x - loc) / scale, skipping the identities."""
    z = x if _is(loc, 0) else np.subtract(x, loc)
    return z if _is(scale, 1) else np.divide(z, scale)


def log_scale(scale):
    return 0.0 if _is(scale, 1) else np.log(scale)


def _is(v, value) -> bool:
    return isinstance(v, (int, float, onp.integer, onp.floating)) and v == value
