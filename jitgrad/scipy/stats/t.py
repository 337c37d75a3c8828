"""`jitgrad.scipy.stats.t`: Student's t distribution, with `df`, `loc` and `scale`."""

from __future__ import annotations

import math

import llvmlite.binding as _llvm
import numba
import scipy.special as _sp
import scipy.stats as _st
from numba.extending import get_cython_function_address

import jitgrad.numpy as np

from ...ops import apply, elementwise_op, not_differentiable
from .. import special
from ._util import exporter, log_scale, standardize, traced

_export = exporter("t")
_HALF_LOG_PI = 0.5 * math.log(math.pi)

_llvm.add_symbol("jitgrad_scipy_special_stdtr",
                 get_cython_function_address("scipy.special.cython_special", "__pyx_fuse_0stdtr"))
_c_stdtr = numba.types.ExternalFunction(
    "jitgrad_scipy_special_stdtr", numba.float64(numba.float64, numba.float64, numba.int32))


@numba.njit(cache=True)
def _stdtr_scalar(df, t):
    return _c_stdtr(float(df), float(t), 0)


def _standard_logpdf(z, df):
    return (special.gammaln((df + 1.0) / 2.0) - special.gammaln(df / 2.0)
            - 0.5 * np.log(df) - _HALF_LOG_PI - (df + 1.0) / 2.0 * np.log1p(z * z / df))


# The standard t cdf (scipy.special.stdtr); as in autograd, df gets no derivative.
_stdtr = elementwise_op(
    "stdtr", numpy=_sp.stdtr, scalar=_stdtr_scalar,
    vjp=(not_differentiable("scipy.stats.t.cdf", "degrees of freedom df"),
         lambda g, ans, df, z: g * np.exp(_standard_logpdf(z, df))))


@_export
def logpdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.t.logpdf(x, df, loc, scale)."""
    if not traced(x, df, loc, scale):
        return _st.t.logpdf(x, df, loc, scale)
    return _standard_logpdf(standardize(x, loc, scale), df) - log_scale(scale)


@_export
def pdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.t.pdf(x, df, loc, scale)."""
    if not traced(x, df, loc, scale):
        return _st.t.pdf(x, df, loc, scale)
    return np.exp(logpdf(x, df, loc, scale))


@_export
def cdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.t.cdf(x, df, loc, scale); differentiable in x, loc and scale, not df (as in
    autograd, which has no scale derivative either)."""
    if not traced(x, df, loc, scale):
        return _st.t.cdf(x, df, loc, scale)
    return apply(_stdtr, df, standardize(x, loc, scale))


@_export
def logcdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.t.logcdf(x, df, loc, scale) as log(cdf); differentiable as `cdf`."""
    if not traced(x, df, loc, scale):
        return _st.t.logcdf(x, df, loc, scale)
    return np.log(cdf(x, df, loc, scale))
