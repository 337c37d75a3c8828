"""`jitgrad.scipy.stats.dirichlet`: the Dirichlet distribution."""

from __future__ import annotations

import numpy as onp
import scipy.stats as _st

import jitgrad.numpy as np

from ...errors import ShapeError
from ...trace import user_frame
from .. import special
from ._util import exporter, traced

_export = exporter("dirichlet")


@_export
def logpdf(x, alpha):
    """scipy.stats.dirichlet.logpdf(x, alpha): x of shape (K,) or (K, N), alpha of shape (K,).
    On traced values x is not checked to lie on the simplex."""
    if not traced(x, alpha):
        return _st.dirichlet.logpdf(x, alpha)
    xs, ashape = onp.shape(x) if not traced(x) else x.shape, (
        onp.shape(alpha) if not traced(alpha) else alpha.shape)
    if len(ashape) != 1 or len(xs) not in (1, 2) or xs[0] != ashape[0]:
        raise ShapeError(f"scipy.stats.dirichlet.logpdf: x of shape {xs} and alpha of shape "
                         f"{ashape}: alpha must be 1-D and x's first axis must match it (at "
                         f"{user_frame()})")
    a = alpha if len(xs) == 1 else np.reshape(alpha, (ashape[0], 1))
    log_b = np.sum(special.gammaln(alpha)) - special.gammaln(np.sum(alpha))
    return np.sum(special.xlogy(a - 1.0, x), axis=0) - log_b


@_export
def pdf(x, alpha):
    """scipy.stats.dirichlet.pdf(x, alpha); see logpdf."""
    if not traced(x, alpha):
        return _st.dirichlet.pdf(x, alpha)
    return np.exp(logpdf(x, alpha))
