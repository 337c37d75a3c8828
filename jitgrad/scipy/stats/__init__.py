"""`jitgrad.scipy.stats`: autograd's distributions, traced (`norm`, `multivariate_normal`, `t`,
`beta`, `gamma`, `dirichlet`, `poisson`, `chi2`), one module each, composed from
`jitgrad.scipy.special` and `jitgrad.numpy` (so they fuse and differentiate to any order).  On
plain arrays every function is SciPy's own."""

from . import beta, chi2, dirichlet, gamma, multivariate_normal, norm, poisson, t  # noqa: F401
