"""Errors a user can see.  Each one names the problem in the user's terms."""


class JitgradError(Exception):
    """Base class of every error jitgrad raises on purpose."""


class TracingError(JitgradError, TypeError):
    """The traced function did something jitgrad cannot trace (in-place assignment, `float()` of
    a traced value, an unsupported NumPy function, ...)."""


class ShapeError(JitgradError, ValueError):
    """Operands whose shapes do not fit the operation."""


class ArgumentError(JitgradError, TypeError):
    """An argument of the differentiated function (or of grad itself) that jitgrad cannot take."""


class JitgradInternalError(JitgradError, RuntimeError):
    """A bug in jitgrad itself: a pass produced invalid IR, or generated code failed to compile."""


class JitgradWarning(UserWarning):
    """Something jitgrad worked around, such as an unusable kernel cache directory."""
