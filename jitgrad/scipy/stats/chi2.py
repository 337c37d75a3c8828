"""`jitgrad.scipy.stats.chi2`: the chi-squared distribution, with `df`, `loc` and `scale`."""

from __future__ import annotations

import math

import scipy.stats as _st

import jitgrad.numpy as np

from .. import special
from ._util import exporter, log_scale, standardize, traced

_export = exporter("chi2")
_LOG_2 = math.log(2.0)


@_export
def logpdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.chi2.logpdf(x, df, loc, scale), for x inside the support; differentiable in
    df too (autograd is not)."""
    if not traced(x, df, loc, scale):
        return _st.chi2.logpdf(x, df, loc, scale)
    z = standardize(x, loc, scale)
    k = df / 2.0
    return (special.xlogy(k - 1.0, z) - z / 2.0 - special.gammaln(k) - k * _LOG_2
            - log_scale(scale))


@_export
def pdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.chi2.pdf(x, df, loc, scale), for x inside the support."""
    if not traced(x, df, loc, scale):
        return _st.chi2.pdf(x, df, loc, scale)
    return np.exp(logpdf(x, df, loc, scale))


@_export
def cdf(x, df, loc=0.0, scale=1.0):
    """scipy.stats.chi2.cdf(x, df, loc, scale); differentiable in x, loc, scale, not in df (as
    in autograd)."""
    if not traced(x, df, loc, scale):
        return _st.chi2.cdf(x, df, loc, scale)
    return special.gammainc(df / 2.0, standardize(x, loc, scale) / 2.0)
