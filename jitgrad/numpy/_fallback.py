"""What `jitgrad.numpy` (and its submodules) give for a name jitgrad does not trace: NumPy's own
object, which works on plain values and, given a traced value, raises an error that names the
function and points to the supported table.

This module defines no function named like a builtin, and the cache it fills is not a module's
globals: a NumPy name such as `any`, `all`, `round` or `sum` can never shadow the builtins that
the wrappers themselves use (which once made every later call a RecursionError)."""

from __future__ import annotations

import builtins
import functools
import inspect

from ..errors import TracingError
from ..trace import Tracer, user_frame


def _holds_tracer(value, depth: int = 0) -> bool:
    if isinstance(value, Tracer):
        return True
    if depth < 3 and isinstance(value, (list, tuple)):
        return builtins.any(_holds_tracer(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return builtins.any(_holds_tracer(v, depth + 1) for v in value.values())
    return False


def untraceable(qualname: str, fn):
    """`fn` (NumPy's `qualname`), raising a clear error when given a traced value."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _holds_tracer(args) or _holds_tracer(kwargs):
            raise TracingError(
                f"{qualname} is not supported on traced values yet (at {user_frame()}). The "
                f"supported functions are listed in docs/numpy.md (and in "
                f"jitgrad.ops.REGISTRY).")
        return fn(*args, **kwargs)

    return wrapper


def module_getattr(public: str, numpy_module, table: dict):
    """A module `__getattr__` for `jitgrad.<public>`: NumPy's `numpy_module.<name>`, wrapped by
    `untraceable` if it is a function, remembered in `table`."""
    def __getattr__(name: str):
        try:
            return table[name]
        except KeyError:
            pass
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            obj = builtins.getattr(numpy_module, name)
        except AttributeError:
            raise AttributeError(f"module 'jitgrad.{public}' has no attribute {name!r} (nor "
                                 f"has {numpy_module.__name__})") from None
        if builtins.callable(obj) and not builtins.isinstance(obj, type) \
                and not inspect.ismodule(obj):
            obj = untraceable(f"{numpy_module.__name__}.{name}", obj)
        table[name] = obj
        return obj

    return __getattr__
