"""`jitgrad.scipy.stats.multivariate_normal`: logpdf, pdf and entropy with `mean` and `cov`
(a matrix, or a scalar or 1-D diagonal).  A matrix `cov` needs jitgrad.numpy.linalg's `solve`
and `slogdet`; `allow_singular=True` is not supported on traced values."""

from __future__ import annotations

import math

import numpy as onp
import scipy.stats as _st

import jitgrad.numpy as np

from ...errors import ShapeError, TracingError
from ...trace import user_frame
from ._util import exporter, traced

_export = exporter("multivariate_normal")
_LOG_2PI = math.log(2.0 * math.pi)


def _shape(a):
    return a.shape if traced(a) else onp.shape(a)


def _check(name, allow_singular):
    if allow_singular:
        raise TracingError(f"scipy.stats.multivariate_normal.{name}: allow_singular=True is not "
                           f"supported on traced values (at {user_frame()})")


def _logdet_and_solve(cov, d, name):
    """log det(cov), and a function v -> cov^-1 v over v's first axis."""
    cshape = _shape(cov)
    if len(cshape) == 0:
        return d * np.log(cov), lambda v: v / cov
    if len(cshape) == 1:
        return np.sum(np.log(cov)), lambda v: v / (np.reshape(cov, (d, 1)) if
                                                    len(_shape(v)) == 2 else cov)
    if cshape != (d, d):
        raise ShapeError(f"scipy.stats.multivariate_normal.{name}: cov of shape {cshape} does "
                         f"not match dimension {d} (at {user_frame()})")
    linalg = np.linalg
    if not all(f in getattr(linalg, "SUPPORTED", {}) for f in ("solve", "slogdet")):
        raise TracingError(f"scipy.stats.multivariate_normal.{name} with a matrix cov needs "
                           f"jitgrad.numpy.linalg.solve and slogdet, which jitgrad does not "
                           f"trace yet")
    return linalg.slogdet(cov)[1], lambda v: linalg.solve(cov, v)


@_export
def logpdf(x, mean=None, cov=1, allow_singular=False):
    """scipy.stats.multivariate_normal.logpdf(x, mean, cov): x of shape (d,) or (N, d)."""
    if not traced(x, mean, cov):
        return _st.multivariate_normal.logpdf(x, mean, cov, allow_singular=allow_singular)
    _check("logpdf", allow_singular)
    xshape = _shape(x)
    d = xshape[-1] if xshape else 1
    if len(xshape) > 2:
        raise ShapeError(f"scipy.stats.multivariate_normal.logpdf: x of shape {xshape}: 1-D or "
                         f"2-D x is supported (at {user_frame()})")
    diff = x if mean is None else np.subtract(x, mean)
    if not xshape:
        diff = np.reshape(diff, (1,))
    logdet, solve = _logdet_and_solve(cov, d, "logpdf")
    diff_t = np.transpose(diff)
    maha = np.sum(diff_t * solve(diff_t), axis=0)
    return -0.5 * (d * _LOG_2PI + logdet + maha)


@_export
def pdf(x, mean=None, cov=1, allow_singular=False):
    """scipy.stats.multivariate_normal.pdf(x, mean, cov); see logpdf."""
    if not traced(x, mean, cov):
        return _st.multivariate_normal.pdf(x, mean, cov, allow_singular=allow_singular)
    return np.exp(logpdf(x, mean, cov, allow_singular))


@_export
def entropy(mean=None, cov=1):
    """scipy.stats.multivariate_normal.entropy(mean, cov)."""
    if not traced(mean, cov):
        return _st.multivariate_normal.entropy(mean, cov)
    cshape = _shape(cov)
    d = cshape[0] if cshape else (_shape(mean)[0] if mean is not None and _shape(mean) else 1)
    logdet, _ = _logdet_and_solve(cov, d, "entropy")
    return 0.5 * (d * (1.0 + _LOG_2PI) + logdet)
