"""`jitgrad.scipy.stats.beta`: the beta distribution, with `a`, `b`, `loc` and `scale`."""

from __future__ import annotations

import scipy.stats as _st

import jitgrad.numpy as np

from .. import special
from ._util import exporter, log_scale, standardize, traced

_export = exporter("beta")


@_export
def logpdf(x, a, b, loc=0.0, scale=1.0):
    """scipy.stats.beta.logpdf(x, a, b, loc, scale), for x inside the support."""
    if not traced(x, a, b, loc, scale):
        return _st.beta.logpdf(x, a, b, loc, scale)
    z = standardize(x, loc, scale)
    return (special.xlogy(a - 1.0, z) + special.xlog1py(b - 1.0, -z) - special.betaln(a, b)
            - log_scale(scale))


@_export
def pdf(x, a, b, loc=0.0, scale=1.0):
    """scipy.stats.beta.pdf(x, a, b, loc, scale), for x inside the support."""
    if not traced(x, a, b, loc, scale):
        return _st.beta.pdf(x, a, b, loc, scale)
    return np.exp(logpdf(x, a, b, loc, scale))


@_export
def cdf(x, a, b, loc=0.0, scale=1.0):
    """scipy.stats.beta.cdf(x, a, b, loc, scale); differentiable in x, loc, scale, not in a and
    b (as in autograd)."""
    if not traced(x, a, b, loc, scale):
        return _st.beta.cdf(x, a, b, loc, scale)
    return special.betainc(a, b, standardize(x, loc, scale))
