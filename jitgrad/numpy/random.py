"""`jitgrad.numpy.random` is NumPy's `numpy.random`, untraced: draws made while a function is
traced are replayed before every call (see docs/how-it-works.md), so each call draws afresh as
the function run eagerly would."""

import numpy.random as _npr
from numpy.random import *  # noqa: F401,F403


def __getattr__(name: str):
    return getattr(_npr, name)
