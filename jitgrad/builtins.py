"""`jitgrad.builtins`: autograd's `autograd.builtins` names.  jitgrad's traced values need no
special containers, so `tuple`, `list` and `dict` are Python's own; `isinstance` and `type` see
a traced array as a `numpy.ndarray`, as autograd's do for its boxes."""

import builtins as _builtins

import numpy as _np

from .trace import Tracer as _Tracer

tuple = _builtins.tuple  # noqa: A001
list = _builtins.list  # noqa: A001
dict = _builtins.dict  # noqa: A001


def isinstance(obj, classinfo):  # noqa: A001
    """Python's isinstance, with a traced array an instance of numpy.ndarray."""
    if _builtins.isinstance(obj, _Tracer):
        classes = classinfo if _builtins.isinstance(classinfo, _builtins.tuple) else (classinfo,)
        return any(c is _np.ndarray or c is _Tracer for c in classes)
    return _builtins.isinstance(obj, classinfo)


def type(obj):  # noqa: A001
    """Python's type, with numpy.ndarray for a traced array."""
    return _np.ndarray if _builtins.isinstance(obj, _Tracer) else _builtins.type(obj)
