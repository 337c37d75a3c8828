"""`jitgrad.scipy.stats.gamma`: the gamma distribution, with shape `a`, `loc` and `scale`."""

from __future__ import annotations

import scipy.stats as _st

import jitgrad.numpy as np

from .. import special
from ._util import exporter, log_scale, standardize, traced

_export = exporter("gamma")


@_export
def logpdf(x, a, loc=0.0, scale=1.0):
    """scipy.stats.gamma.logpdf(x, a, loc, scale), for x inside the support."""
    if not traced(x, a, loc, scale):
        return _st.gamma.logpdf(x, a, loc, scale)
    z = standardize(x, loc, scale)
    return special.xlogy(a - 1.0, z) - z - special.gammaln(a) - log_scale(scale)


@_export
def pdf(x, a, loc=0.0, scale=1.0):
    """scipy.stats.gamma.pdf(x, a, loc, scale), for x inside the support."""
    if not traced(x, a, loc, scale):
        return _st.gamma.pdf(x, a, loc, scale)
    return np.exp(logpdf(x, a, loc, scale))


@_export
def cdf(x, a, loc=0.0, scale=1.0):
    """scipy.stats.gamma.cdf(x, a, loc, scale); differentiable in x, loc, scale, not in a (as
    in autograd)."""
    if not traced(x, a, loc, scale):
        return _st.gamma.cdf(x, a, loc, scale)
    return special.gammainc(a, standardize(x, loc, scale))
