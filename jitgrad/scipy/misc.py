"""`jitgrad.scipy.misc`: `logsumexp`, which autograd still exports here (it is
jitgrad.scipy.special.logsumexp)."""

from ..ops import export
from .special import logsumexp

logsumexp = export("scipy.misc")(logsumexp)

__all__ = ["logsumexp"]
