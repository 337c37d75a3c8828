"""`jitgrad.numpy.fft`: NumPy's `numpy.fft`, traced where `SUPPORTED` says; every other name
is NumPy's own (it works on plain arrays and raises a clear error on traced ones).

Three ops do the work, each a 1-D transform along the last axis of a 2-D array (callers move
the axis last and flatten the rest): `fft_rows` (complex to complex, forward or inverse),
`rfft_rows` (real to half-spectrum) and `irfft_rows` (half-spectrum to real).  The N-D
transforms are 1-D ones along each axis.  NumPy computes them: generated kernels call out of
nopython code (`numba.objmode`, a few microseconds a call), in double precision.

Rules follow autograd's convention for complex values (transposes, not adjoints): the DFT matrix
is symmetric, so an fft's VJP is the same fft of the cotangent; rfft's is the real part of the
fft of the zero-padded cotangent, irfft's a weighted conjugate rfft.  Unlike autograd, odd
lengths are supported.
"""

import numpy as _onp
import numpy.fft as _np_fft

from .. import _jit
from .._jit import NUMBA as numba
from ..errors import ShapeError, TracingError
from ..ir import Span
from ..ops import REGISTRY as _REGISTRY
from ..ops import apply, call_op, export
from ..primitives import Prim
from ..trace import Tracer, bind, full, user_frame
from . import _base as jnp
from ._fallback import module_getattr as _module_getattr

SUPPORTED: dict = _REGISTRY.setdefault("numpy.fft", {})
_NORMS = ("backward", "ortho", "forward")

# ------------------------------------------------------------------------------------------------
# The ops: NumPy's transforms along the last axis of a 2-D array
# ------------------------------------------------------------------------------------------------


def _fft_py(x, inverse, norm):
    f = _np_fft.ifft if inverse else _np_fft.fft
    return _onp.ascontiguousarray(f(x, axis=-1, norm=norm), dtype=_onp.complex128)


def _rfft_py(x, norm):
    return _onp.ascontiguousarray(_np_fft.rfft(x, axis=-1, norm=norm), dtype=_onp.complex128)


def _irfft_py(x, n, norm):
    return _onp.ascontiguousarray(_np_fft.irfft(x, n=n, axis=-1, norm=norm), dtype=_onp.float64)


@_jit.njit(cache=True)
def _fft_rows_kernel(x, inverse, norm):
    with numba.objmode(out="complex128[:, ::1]"):
        out = _fft_py(x, inverse, norm)
    return out


@_jit.njit(cache=True)
def _rfft_rows_kernel(x, norm):
    with numba.objmode(out="complex128[:, ::1]"):
        out = _rfft_py(x, norm)
    return out


@_jit.njit(cache=True)
def _irfft_rows_kernel(x, n, norm):
    with numba.objmode(out="float64[:, ::1]"):
        out = _irfft_py(x, n, norm)
    return out


_C128, _F64 = _onp.dtype(_onp.complex128), _onp.dtype(_onp.float64)

fft_rows = call_op(
    "fft_rows", numpy=lambda x, inverse, norm: _fft_py(x, inverse, norm),
    kernel=_fft_rows_kernel, static=("inverse", "norm"),
    shape=lambda x, inverse, norm: [(x.shape, _C128)],
    # The DFT matrix is symmetric: the transpose of each transform is itself.
    vjp=(lambda g, ans, x, inverse, norm: apply(fft_rows, g, inverse=inverse, norm=norm),))


def _rfft_vjp(g, ans, x, norm):
    n = x.shape[-1]
    padded = _pad_last(g, n)  # the half spectrum is the first n // 2 + 1 rows of F x
    return jnp.real(apply(fft_rows, padded, inverse=False, norm=norm))


rfft_rows = call_op(
    "rfft_rows", numpy=lambda x, norm: _rfft_py(x, norm), kernel=_rfft_rows_kernel,
    static=("norm",), shape=lambda x, norm: [((x.shape[0], x.shape[1] // 2 + 1), _C128)],
    vjp=(_rfft_vjp,))


def _irfft_vjp(g, ans, x, n, norm):
    # y = irfft(X) is real and linear in (Re X, Im X): the cotangent of X_k is
    # scale_k * conj(rfft(g))_k, with scale 2 for the terms that appear twice in the Hermitian
    # extension and 1 for X_0 (and X_{n/2} when n is even), times the norm's factor.
    m = x.shape[-1]
    weights = _onp.full(m, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    weights *= {"backward": 1.0 / n, "ortho": 1.0 / _onp.sqrt(n), "forward": 1.0}[norm]
    return jnp.conj(apply(rfft_rows, g, norm="backward")) * weights


irfft_rows = call_op(
    "irfft_rows", numpy=lambda x, n, norm: _irfft_py(x, n, norm), kernel=_irfft_rows_kernel,
    static=("n", "norm"), shape=lambda x, n, norm: [((x.shape[0], n), _F64)],
    vjp=(_irfft_vjp,))

# ------------------------------------------------------------------------------------------------
# Helpers: move an axis last and flatten the rest; pad or truncate
# ------------------------------------------------------------------------------------------------


def _pad_last(x, n: int):
    """`x` truncated or zero-padded to length `n` along its last axis (as NumPy's `n=`)."""
    m = x.shape[-1]
    if m == n:
        return x
    if m > n:
        return x[..., :n]
    base = full(x.shape[:-1] + (n,), 0.0, x.dtype)
    index = tuple(Span(0, 1, k) for k in x.shape[:-1]) + (Span(0, 1, m),)
    return bind(Prim.add_into, base, x, index=index)


def _along(x, axis: int, name: str, transform):
    """Apply `transform` (2-D rows -> 2-D rows) along `axis` of `x`."""
    nd = x.ndim
    if nd == 0:
        raise ShapeError(f"np.fft.{name}: a 0-d array has no axis to transform "
                         f"(at {user_frame()})")
    if not -nd <= axis < nd:
        raise ShapeError(f"np.fft.{name}: axis {axis} is out of bounds for an array of "
                         f"dimension {nd} (at {user_frame()})")
    axis %= nd
    perm = [d for d in range(nd) if d != axis] + [axis]
    moved = jnp.transpose(x, perm)
    lead = moved.shape[:-1]
    rows = jnp.reshape(moved, (int(_onp.prod(lead, dtype=_onp.int64)), moved.shape[-1]))
    out = transform(rows)
    out = jnp.reshape(out, lead + (out.shape[-1],))
    return jnp.transpose(out, tuple(_onp.argsort(perm)))


def _norm(norm, name: str) -> str:
    norm = "backward" if norm is None else norm
    if norm not in _NORMS:
        raise TracingError(f"np.fft.{name}: norm={norm!r} is not one of {_NORMS}")
    return norm


def _as(x, dtype):
    return x if x.dtype == dtype else bind(Prim.convert, x, dtype=dtype)


def _checked_n(n, name):
    if n is not None and (not isinstance(n, (int, _onp.integer)) or n < 1):
        raise ShapeError(f"np.fft.{name}: invalid number of data points ({n!r}) specified")
    return n


def _c2c(a, n, axis, norm, inverse, name):
    norm, n = _norm(norm, name), _checked_n(n, name)

    def transform(rows):
        rows = _pad_last(_as(rows, _C128), rows.shape[-1] if n is None else int(n))
        return apply(fft_rows, rows, inverse=inverse, norm=norm)

    return _along(a, axis, name, transform)


def _axes_and_sizes(a, s, axes, name, default_axes):
    if axes is None:
        axes = default_axes if s is None else tuple(range(-len(s), 0))
    axes = tuple(axes)
    if s is None:
        s = tuple(a.shape[ax] for ax in axes)
    if len(s) != len(axes):
        raise ShapeError(f"np.fft.{name}: shape and axes have different lengths")
    return tuple(s), axes


def _traced(fn, name):
    """`fn` on tracers, NumPy's `name` on plain values."""
    numpy_fn = getattr(_np_fft, name)

    def wrapper(a, *args, **kwargs):
        if not isinstance(a, Tracer):
            return numpy_fn(a, *args, **kwargs)
        return fn(a, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = fn.__doc__
    return export("numpy.fft", name)(wrapper)


# ------------------------------------------------------------------------------------------------
# The public transforms
# ------------------------------------------------------------------------------------------------


def _fft(a, n=None, axis=-1, norm=None):
    """numpy.fft.fft, with n, axis and norm."""
    return _c2c(a, n, axis, norm, False, "fft")


def _ifft(a, n=None, axis=-1, norm=None):
    """numpy.fft.ifft, with n, axis and norm."""
    return _c2c(a, n, axis, norm, True, "ifft")


def _fftn_like(inverse, name, default_axes=None):
    def fn(a, s=None, axes=default_axes, norm=None):
        sizes, axes = _axes_and_sizes(a, s, axes, name, tuple(range(-a.ndim, 0)))
        if len(set(ax % a.ndim for ax in axes)) != len(axes):
            raise ShapeError(f"np.fft.{name}: repeated axes {axes} are not supported")
        out = a
        for ax, n in zip(axes, sizes):
            out = _c2c(out, n, ax, norm, inverse, name)
        return out

    fn.__doc__ = f"numpy.fft.{name}, with s, axes and norm."
    return fn


def _rfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.rfft of a real array, with n, axis and norm."""
    norm, n = _norm(norm, "rfft"), _checked_n(n, "rfft")
    if a.dtype.kind == "c":
        raise TracingError(f"np.fft.rfft of a complex array (at {user_frame()}): NumPy discards "
                           f"the imaginary part; take np.real(a) first, or use np.fft.fft")

    def transform(rows):
        rows = _pad_last(_as(rows, _F64), rows.shape[-1] if n is None else int(n))
        return apply(rfft_rows, rows, norm=norm)

    return _along(a, axis, "rfft", transform)


def _irfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.irfft, with n, axis and norm."""
    norm, n = _norm(norm, "irfft"), _checked_n(n, "irfft")

    def transform(rows):
        length = 2 * (rows.shape[-1] - 1) if n is None else int(n)
        rows = _pad_last(_as(rows, _C128), length // 2 + 1)
        return apply(irfft_rows, rows, n=length, norm=norm)

    return _along(a, axis, "irfft", transform)


def _rfftn_like(name, default_axes=None):
    def fn(a, s=None, axes=default_axes, norm=None):
        sizes, axes = _axes_and_sizes(a, s, axes, name, tuple(range(-a.ndim, 0)))
        out = _rfft(a, sizes[-1], axes[-1], norm)
        for ax, n in zip(axes[:-1], sizes[:-1]):
            out = _c2c(out, n, ax, norm, False, name)
        return out

    fn.__doc__ = f"numpy.fft.{name} of a real array, with s, axes and norm."
    return fn


def _irfftn_like(name, default_axes=None):
    def fn(a, s=None, axes=default_axes, norm=None):
        if axes is None:
            axes = tuple(range(-a.ndim, 0)) if s is None else tuple(range(-len(s), 0))
        axes = tuple(axes)
        if s is None:
            s = tuple(a.shape[ax] for ax in axes[:-1]) + (2 * (a.shape[axes[-1]] - 1),)
        out = a
        for ax, n in zip(axes[:-1], s[:-1]):
            out = _c2c(out, n, ax, norm, True, name)
        return _irfft(out, s[-1], axes[-1], norm)

    fn.__doc__ = f"numpy.fft.{name}, with s, axes and norm."
    return fn


def _roll_axis(x, shift: int, axis: int):
    """x rolled by `shift` along `axis`: two slices written into a new array."""
    n = x.shape[axis]
    shift %= n
    if shift == 0:
        return x
    out = full(x.shape, 0.0, x.dtype)
    for src, dst in (((0, n - shift), shift), ((n - shift, n), 0)):
        index = tuple(Span(0, 1, k) if d != axis else Span(src[0], 1, src[1] - src[0])
                      for d, k in enumerate(x.shape))
        piece = bind(Prim.slice, x, index=index)
        place = tuple(Span(0, 1, k) if d != axis else Span(dst, 1, src[1] - src[0])
                      for d, k in enumerate(x.shape))
        out = bind(Prim.add_into, out, piece, index=place)
    return out


def _shift_like(sign, name):
    def fn(x, axes=None):
        axes = tuple(range(x.ndim)) if axes is None else (
            (axes,) if isinstance(axes, (int, _onp.integer)) else tuple(axes))
        for ax in axes:
            ax = int(ax) % x.ndim
            x = _roll_axis(x, sign * (x.shape[ax] // 2), ax)
        return x

    fn.__doc__ = f"numpy.fft.{name}, with axes."
    return fn


fft = _traced(_fft, "fft")
ifft = _traced(_ifft, "ifft")
fft2 = _traced(_fftn_like(False, "fft2", (-2, -1)), "fft2")
ifft2 = _traced(_fftn_like(True, "ifft2", (-2, -1)), "ifft2")
fftn = _traced(_fftn_like(False, "fftn"), "fftn")
ifftn = _traced(_fftn_like(True, "ifftn"), "ifftn")
rfft = _traced(_rfft, "rfft")
irfft = _traced(_irfft, "irfft")
rfft2 = _traced(_rfftn_like("rfft2", (-2, -1)), "rfft2")
irfft2 = _traced(_irfftn_like("irfft2", (-2, -1)), "irfft2")
rfftn = _traced(_rfftn_like("rfftn"), "rfftn")
irfftn = _traced(_irfftn_like("irfftn"), "irfftn")
fftshift = _traced(_shift_like(1, "fftshift"), "fftshift")
ifftshift = _traced(_shift_like(-1, "ifftshift"), "ifftshift")

__getattr__ = _module_getattr("numpy.fft", _np_fft, {})
