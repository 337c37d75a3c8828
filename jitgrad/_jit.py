"""Numba, imported when the first kernel is compiled, not by `import jitgrad`.

Importing Numba and making its dispatchers costs about 0.3 s, and the interpreted tier (api.py)
needs neither: a script whose gradients are all interpreted never imports it.  So the Numba
functions of jitgrad's families (the kernels of `call` ops, the `scalar` functions of
elementwise ops, their helpers) are declared with `njit` below, which records the function and
its options and returns a `Lazy` stand-in: callable from Python (it makes its dispatcher then),
with the function's name, module and `py_func`, which is all that code generation reads.

`ready()`, called before any generated kernel is compiled or loaded, imports Numba, makes every
dispatcher and puts each in place of its stand-in in the globals of the modules that hold it,
since Numba resolves a kernel's globals when it compiles it.  The modules name Numba itself as
`from jitgrad._jit import NUMBA as numba` (for the `numba.objmode` blocks of their kernels):
`ready()` puts the module in place of that stand-in too (and a module imported after it gets the
module itself), and an attribute read from the stand-in in Python (`numba.types`) imports Numba
then.
"""

from __future__ import annotations

import functools
import sys
import threading

_LAZY: list = []  # every stand-in made
_LOCK = threading.RLock()
_READY = False


class Lazy:
    """A Numba function not made yet (see the module docstring)."""

    def __init__(self, py_func, options: dict):
        self.py_func, self.options, self._dispatcher = py_func, options, None
        functools.update_wrapper(self, py_func)

    def dispatcher(self):
        if self._dispatcher is None:
            ready()
        return self._dispatcher

    def __call__(self, *args, **kwargs):
        return self.dispatcher()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<jitgrad lazy Numba function {self.__module__}.{self.__qualname__}>"


class _Numba:
    """The `numba` module, imported at its first use (see the module docstring)."""

    def __getattr__(self, name):
        import numba

        return getattr(numba, name)

    def __repr__(self) -> str:
        return "<numba, imported when jitgrad compiles its first kernel>"


NUMBA = _Numba()


def njit(fun=None, **options):
    """`numba.njit(**options)`, made at `ready()`: `@njit` or `@njit(cache=True, ...)`."""
    if fun is None:
        return functools.partial(njit, **options)
    lazy = Lazy(fun, options)
    with _LOCK:
        _LAZY.append(lazy)
        if _READY:  # a module imported after the first kernel: the dispatcher itself
            _make(lazy)
            return lazy._dispatcher
    return lazy


def ready() -> None:
    """Import Numba and put every lazy function's dispatcher in place (once per process)."""
    global _READY, NUMBA
    if _READY:
        return
    with _LOCK:
        if _READY:
            return
        import numba

        for lazy in _LAZY:
            _make(lazy)
        for name, module in list(sys.modules.items()):
            if module is None or module is sys.modules[__name__] or not (
                    name == "jitgrad" or name.startswith("jitgrad.")):
                continue
            namespace = vars(module)
            for key, value in list(namespace.items()):
                if isinstance(value, Lazy):
                    namespace[key] = value._dispatcher
                elif value is NUMBA:
                    namespace[key] = numba
        NUMBA = numba  # for the modules imported from now on
        from .runtime import tune_malloc

        tune_malloc()
        _READY = True


def is_ready() -> bool:
    """Whether Numba has been imported for jitgrad's kernels in this process."""
    return _READY


def _make(lazy: Lazy) -> None:
    import numba

    from .compile import fail_soft

    if lazy._dispatcher is None:
        try:
            lazy._dispatcher = numba.njit(**lazy.options)(lazy.py_func)
        except RuntimeError:  # cache=True with no writable cache location: uncached
            lazy._dispatcher = numba.njit(**{**lazy.options, "cache": False})(lazy.py_func)
        fail_soft(lazy._dispatcher)
