"""`jitgrad.scipy.stats.norm`: the normal distribution, with `loc` and `scale`."""

from __future__ import annotations

import math

import scipy.stats as _st

import jitgrad.numpy as np

from .. import special
from ._util import exporter, log_scale, standardize, traced

_export = exporter("norm")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@_export
def logpdf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.logpdf(x, loc, scale)."""
    if not traced(x, loc, scale):
        return _st.norm.logpdf(x, loc, scale)
    z = standardize(x, loc, scale)
    return -0.5 * z * z - log_scale(scale) - _HALF_LOG_2PI


@_export
def pdf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.pdf(x, loc, scale)."""
    if not traced(x, loc, scale):
        return _st.norm.pdf(x, loc, scale)
    return np.exp(logpdf(x, loc, scale))


@_export
def cdf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.cdf(x, loc, scale)."""
    if not traced(x, loc, scale):
        return _st.norm.cdf(x, loc, scale)
    return special.ndtr(standardize(x, loc, scale))


@_export
def logcdf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.logcdf(x, loc, scale), accurate in the far left tail (log_ndtr)."""
    if not traced(x, loc, scale):
        return _st.norm.logcdf(x, loc, scale)
    return special.log_ndtr(standardize(x, loc, scale))


@_export
def sf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.sf(x, loc, scale): 1 - cdf."""
    if not traced(x, loc, scale):
        return _st.norm.sf(x, loc, scale)
    return special.ndtr(-standardize(x, loc, scale))


@_export
def logsf(x, loc=0.0, scale=1.0):
    """scipy.stats.norm.logsf(x, loc, scale)."""
    if not traced(x, loc, scale):
        return _st.norm.logsf(x, loc, scale)
    return special.log_ndtr(-standardize(x, loc, scale))


@_export
def ppf(q, loc=0.0, scale=1.0):
    """scipy.stats.norm.ppf(q, loc, scale): the quantile function."""
    if not traced(q, loc, scale):
        return _st.norm.ppf(q, loc, scale)
    return special.ndtri(q) * scale + loc
