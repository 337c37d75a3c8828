"""`jitgrad.scipy.stats.poisson`: the Poisson distribution, with `mu` and `loc`."""

from __future__ import annotations

import math

import numpy as onp
import scipy.stats as _st

import jitgrad.numpy as np

from ...ops import apply, elementwise_op
from .. import special
from ._util import exporter, traced

_export = exporter("poisson")

_floor = elementwise_op("poisson_floor", numpy=onp.floor, code="np.floor({0})", vjp=None)


def _k(k, loc):
    k = k if isinstance(loc, (int, float)) and loc == 0 else np.subtract(k, loc)
    return k, (apply(_floor, k) if traced(k) else onp.floor(k))


@_export
def logpmf(k, mu, loc=0):
    """scipy.stats.poisson.logpmf(k, mu, loc): -inf where k is not a non-negative integer; no
    gradient flows to k (as in autograd)."""
    if not traced(k, mu, loc):
        return _st.poisson.logpmf(k, mu, loc)
    k, floor = _k(k, loc)
    inside = np.logical_and(np.equal(k, floor), np.greater_equal(k, 0.0))
    kk = np.where(inside, k, 0.0)
    return np.where(inside, special.xlogy(kk, mu) - special.gammaln(kk + 1.0) - mu, -math.inf)


@_export
def pmf(k, mu, loc=0):
    """scipy.stats.poisson.pmf(k, mu, loc)."""
    if not traced(k, mu, loc):
        return _st.poisson.pmf(k, mu, loc)
    return np.exp(logpmf(k, mu, loc))


@_export
def cdf(k, mu, loc=0):
    """scipy.stats.poisson.cdf(k, mu, loc); no gradient flows to k (as in autograd)."""
    if not traced(k, mu, loc):
        return _st.poisson.cdf(k, mu, loc)
    k, floor = _k(k, loc)
    inside = np.greater_equal(k, 0.0)
    return np.where(inside, special.gammaincc(np.where(inside, floor, 0.0) + 1.0, mu), 0.0)
