"""`jitgrad.scipy.integrate`: `odeint`, differentiable with respect to `y0`, `t` and `args` by
the adjoint method, as autograd's (Froehlich, Loos and Hasenauer 2017, sec. 2.4.2).  Every other
name is SciPy's own (plain arrays only).

On traced values, `odeint` is one op whose kernel calls SciPy's odeint back (`numba.objmode`),
on `func` run with plain NumPy arrays.  Its adjoint is a second op: from the last time back to
the first, SciPy integrates the state together with the cotangents of y, of t[0] and of the
args, with `func`'s vector-Jacobian products as their right-hand side.  Those products come from
one jitgrad kernel per odeint call site, compiled at its first use and called at every step.

The op's only operand is `packed`: y0, t and the float leaves of args, raveled end to end (the
concatenation's adjoint splits the cotangent back into them), so the adjoint runs once whatever
is differentiated.  The adjoint is linear in the cotangent; its transpose, the tangent op
(forward sensitivities, integrated forward), is its VJP with respect to the cotangent, so that
make_jvp and jacobian by columns work.  Neither has a derivative with respect to y0, t or args:
second derivatives through odeint are a clear error."""

from __future__ import annotations

import functools
import threading
import types

import numpy as onp
import scipy.integrate as _integrate

import jitgrad.numpy as np

from .. import _jit
from .._jit import NUMBA as numba
from ..api import grad
from ..control import converted_call
from ..errors import TracingError
from ..misc.flatten import flatten
from ..ops import REGISTRY, apply, call_op, export
from ..trace import Tracer, user_frame

SUPPORTED: dict = REGISTRY.setdefault("scipy.integrate", {})

# Index -> _Problem, for the callbacks of compiled kernels.  As in jitgrad.extend, the index
# reaches the kernel as an operand (a constant array), never as text of its source, so a kernel
# loaded from the disk cache calls the problem of this process's trace.
_PROBLEMS: list = []
_PROBLEMS_LOCK = threading.Lock()

# SciPy options that describe the forward system only: the augmented systems of the adjoint and
# the tangent have their own size, Jacobian and argument order.
_FORWARD_ONLY = ("Dfun", "col_deriv", "ml", "mu", "full_output", "tfirst")


# --- trees of args: float leaves are differentiated, the others are passed as they are ------------


def _is_float_leaf(x) -> bool:
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (bool, onp.bool_)):
        return False
    return isinstance(x, (float, onp.floating)) or (
        isinstance(x, onp.ndarray) and x.dtype.kind == "f")


def _split(tree, floats: list, others: list):
    """The skeleton of a tree of tuples, lists and dicts; its float leaves and its other leaves
    appended to `floats` and `others`."""
    t = type(tree)
    if t in (list, tuple) or (isinstance(tree, tuple) and hasattr(tree, "_fields")):
        return (t, [_split(v, floats, others) for v in tree])
    if t is dict:
        return (dict, list(tree), [_split(v, floats, others) for v in tree.values()])
    kind = "float" if _is_float_leaf(tree) else "other"
    (floats if kind == "float" else others).append(tree)
    return kind


def _join(skeleton, floats, others):
    """The tree of `skeleton` with the leaves taken from the iterators `floats`, `others`."""
    if skeleton == "float":
        return next(floats)
    if skeleton == "other":
        return next(others)
    if skeleton[0] is dict:
        return {k: _join(s, floats, others) for k, s in zip(skeleton[1], skeleton[2])}
    children = [_join(s, floats, others) for s in skeleton[1]]
    t = skeleton[0]
    return t(*children) if t not in (list, tuple) else t(children)


def _template(leaf):
    """A plain stand-in of a float leaf for `flatten`: same shape, same kind (array or number)."""
    return onp.zeros(onp.shape(leaf)) if isinstance(leaf, (onp.ndarray, Tracer)) else 0.0


# --- one odeint call of a traced function ---------------------------------------------------------


class _Problem:
    """One odeint call of a traced function: `func`, how `packed` splits back into y0, t and
    args, and SciPy's options.  Its methods run on NumPy values, out of compiled kernels."""

    def __init__(self, func, y0, t, args, options):
        self.func, self.options = func, options
        self.tfirst = bool(options.get("tfirst", False))
        floats, self.others = [], []
        self.skeleton = _split(args, floats, self.others)
        self.n_y, self.n_t = int(onp.size(y0)), int(onp.size(t))
        self.n_p = sum(int(onp.size(x)) for x in floats)
        self.packed, self._unpack = flatten([y0, t, *floats])
        self._unpack_args = flatten([_template(x) for x in floats])[1]
        linear = {k: v for k, v in options.items() if k not in _FORWARD_ONLY}
        for k in ("rtol", "atol"):  # per-component tolerances do not fit the augmented state
            if linear.get(k) is not None and onp.ndim(linear[k]) > 0:
                linear[k] = float(onp.min(linear[k]))
        self.linear_options = linear
        self._vjp = self._jvp = None
        with _PROBLEMS_LOCK:
            self.index = onp.array([len(_PROBLEMS)], dtype=onp.int64)
            _PROBLEMS.append(self)

    def __repr__(self) -> str:
        return f"<odeint of {getattr(self.func, '__qualname__', 'func')}>"

    def _call(self, y, t, args, call=lambda f, *a: f(*a)):
        return call(self.func, *((t, y) if self.tfirst else (y, t)), *args)

    def _parts(self, packed):
        """(y0, t, args) of a packed value."""
        y0, t, *floats = self._unpack(packed)
        return y0, t, _join(self.skeleton, iter(floats), iter(self.others))

    def _split_packed(self, packed):
        """(t raveled, args, the float leaves of args raveled) of a packed value."""
        _, t, args = self._parts(packed)
        return onp.ravel(t), args, onp.asarray(packed[self.n_y + self.n_t:], onp.float64)

    def solve(self, packed):
        y0, t, args = self._parts(packed)
        out = _integrate.odeint(self.func, y0, t, args=args, **self.options)
        return onp.ascontiguousarray(out, dtype=onp.float64)

    # The kernels take one vector z = [y, t, the float args raveled, lam (, dy, dargs)]: a
    # single float64 array is jitgrad's fast path, and the RHS is called at every solver step.
    def _dot_dynamics(self, z):
        """<func(y, t, *args), lam>: its gradient is lam's VJPs with y, t and the float args,
        and, with respect to lam, func's value itself."""
        D, P = self.n_y, self.n_p  # noqa: N806
        args = _join(self.skeleton, iter(self._unpack_args(z[D + 1:D + 1 + P])),
                     iter(self.others))
        f = self._call(z[:D], z[D], args, converted_call)
        f = np.array(f) if isinstance(f, (list, tuple)) else f  # SciPy takes a list too
        return np.sum(np.reshape(f, (-1,)) * z[D + 1 + P:])

    def _linearized(self, z):
        """Linear in lam, with gradient (df/dy) dy + (df/dargs) dargs."""
        D, P = self.n_y, self.n_p  # noqa: N806
        n = 2 * D + 1 + P
        g = self._vjp(z[:n])
        return np.sum(g[:D] * z[n:n + D]) + np.sum(g[D + 1:D + 1 + P] * z[n + D:])

    def _kernels(self):
        if self._vjp is None:  # traced and compiled once per problem, at their first use
            self._vjp = grad(self._dot_dynamics)
            self._jvp = grad(self._linearized)
        return self._vjp, self._jvp

    def adjoint(self, g, yt, packed):
        """The cotangent of `packed` for the cotangent `g` of the solution `yt`."""
        vjp = self._kernels()[0]
        t, args, flat_args = self._split_packed(packed)
        T, D = yt.shape  # noqa: N806

        def dynamics(state, s):
            # The state, the cotangent a of y, and those of t[0] and of the args, which grow by
            # -a^T df/dt and -a^T df/dargs, integrated backward in time.
            gz = vjp(onp.concatenate((state[:D], (s,), flat_args, -state[D:2 * D])))
            return onp.concatenate((gz[-D:], gz[:-D]))

        a_y = onp.array(g[-1], dtype=onp.float64)
        a_t0, a_args = 0.0, onp.zeros(self.n_p)
        t_bar = onp.zeros(T)
        for i in range(T - 1, 0, -1):
            # Moving t[i] moves the i-th output along the trajectory.
            t_bar[i] = onp.dot(onp.ravel(self._call(yt[i], t[i], args)), g[i])
            a_t0 -= t_bar[i]
            state = onp.concatenate((yt[i], a_y, (a_t0,), a_args))
            state = _integrate.odeint(dynamics, state, onp.array([t[i], t[i - 1]]),
                                      **self.linear_options)[1]
            a_y = state[D:2 * D] + g[i - 1]
            a_t0, a_args = state[2 * D], state[2 * D + 1:]
        t_bar[0] = a_t0
        return onp.concatenate((a_y, t_bar, a_args))

    def tangent(self, w, yt, packed):
        """The tangent of the solution `yt` for the tangent `w` of `packed` (the transpose of
        `adjoint`): forward sensitivities."""
        jvp = self._kernels()[1]
        t, args, flat_args = self._split_packed(packed)
        T, D = yt.shape  # noqa: N806
        w = onp.asarray(w, dtype=onp.float64)
        dy0, dt, dargs = w[:D], w[D:D + T], w[D + T:]
        zeros = onp.zeros(D)
        lam = slice(D + 1 + self.n_p, 2 * D + 1 + self.n_p)

        def dynamics(state, s):
            # The state and its tangent dy, which grows by (df/dy) dy + (df/dargs) dargs.
            y, dy = state[:D], state[D:]
            gz = jvp(onp.concatenate((y, (s,), flat_args, zeros, dy, dargs)))
            return onp.concatenate((onp.ravel(self._call(y, s, args)), gz[lam]))

        out = onp.empty((T, D))
        out[0] = dy0
        # The solution at t > t[0] moves by -Phi(t, t[0]) f(y0, t[0]) dt[0].
        dy = dy0 - onp.ravel(self._call(yt[0], t[0], args)) * dt[0]
        for i in range(1, T):
            state = onp.concatenate((yt[i - 1], dy))
            state = _integrate.odeint(dynamics, state, onp.array([t[i - 1], t[i]]),
                                      **self.linear_options)[1]
            dy = state[D:]
            out[i] = dy + onp.ravel(self._call(yt[i], t[i], args)) * dt[i]
        return out


# --- the ops --------------------------------------------------------------------------------------


def _solve_by_index(packed, index):
    return _PROBLEMS[int(index[0])].solve(packed)


def _adjoint_by_index(g, yt, packed, index):
    return _PROBLEMS[int(index[0])].adjoint(g, yt, packed)


def _tangent_by_index(w, yt, packed, index):
    return _PROBLEMS[int(index[0])].tangent(w, yt, packed)


@_jit.njit(cache=True)
def _solve_kernel(packed, index):
    with numba.objmode(out="float64[:, ::1]"):
        out = _solve_by_index(packed, index)
    return out


@_jit.njit(cache=True)
def _adjoint_kernel(g, yt, packed, index):
    with numba.objmode(out="float64[::1]"):
        out = _adjoint_by_index(g, yt, packed, index)
    return out


@_jit.njit(cache=True)
def _tangent_kernel(w, yt, packed, index):
    with numba.objmode(out="float64[:, ::1]"):
        out = _tangent_by_index(w, yt, packed, index)
    return out


def _not_twice(*args, **params):
    raise TracingError(
        f"scipy.integrate.odeint: its derivatives are SciPy integrations run from the kernel, "
        f"linear in the cotangent or tangent but with no derivative with respect to y0, t or "
        f"args: second derivatives through odeint (grad of grad, hessian, "
        f"hessian_vector_product) are not supported (at {user_frame()})")


def _adjoint_vjp(w, ans, g, yt, packed, index, problem):
    return apply(_tangent, w, yt, packed, index, problem=problem)


def _tangent_vjp(c, ans, w, yt, packed, index, problem):
    return apply(_adjoint, c, yt, packed, index, problem=problem)


# The adjoint (g -> the cotangent of packed) and the tangent (w -> the tangent of the solution)
# are each other's transposes, which is all the VJP of either needs with respect to g or w:
# make_jvp and jacobian (by columns) work, which differentiate a VJP with respect to its
# cotangent only.
_adjoint = call_op(
    "odeint_adjoint", kernel=_adjoint_kernel,
    numpy=lambda g, yt, packed, index, problem: problem.adjoint(g, yt, packed),
    shape=lambda g, yt, packed, index, problem: [(packed.shape, onp.dtype(onp.float64))],
    vjp=(_adjoint_vjp, _not_twice, _not_twice, None))

_tangent = call_op(
    "odeint_tangent", kernel=_tangent_kernel,
    numpy=lambda w, yt, packed, index, problem: problem.tangent(w, yt, packed),
    shape=lambda w, yt, packed, index, problem: [(yt.shape, onp.dtype(onp.float64))],
    vjp=(_tangent_vjp, _not_twice, _not_twice, None))

_solve = call_op(
    "odeint", kernel=_solve_kernel,
    numpy=lambda packed, index, problem: problem.solve(packed),
    shape=lambda packed, index, problem: [((problem.n_t, problem.n_y),
                                           onp.dtype(onp.float64))],
    vjp=(lambda g, yt, packed, index, problem: apply(_adjoint, g, yt, packed, index,
                                                     problem=problem), None))


# --- the public function --------------------------------------------------------------------------


def _has_tracer(tree) -> bool:
    if isinstance(tree, Tracer):
        return True
    if isinstance(tree, (list, tuple)):
        return any(_has_tracer(v) for v in tree)
    if isinstance(tree, dict):
        return any(_has_tracer(v) for v in tree.values())
    return False


def _check_func(func) -> None:
    """`func` runs on plain arrays, out of the kernel: a traced value it closes over would be
    read there as a stale placeholder.  Such a value must come in through args."""
    while True:
        if isinstance(func, types.MethodType):
            func = func.__func__
        elif isinstance(func, functools.partial):
            if _has_tracer(list(func.args)) or _has_tracer(dict(func.keywords or {})):
                raise TracingError(f"scipy.integrate.odeint: func is a functools.partial with a "
                                   f"traced argument; pass it in args instead (at "
                                   f"{user_frame()})")
            func = func.func
        else:
            break
    names = getattr(getattr(func, "__code__", None), "co_freevars", ())
    for name, cell in zip(names, getattr(func, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _has_tracer(value):
            raise TracingError(
                f"scipy.integrate.odeint: func reads the traced value {name!r} from its "
                f"enclosing scope; odeint differentiates through y0, t and args only: write "
                f"func(y, t, {name}) and pass args=({name},) (at {user_frame()})")


@export("scipy.integrate")
def odeint(func, y0, t, args=(), **kwargs):
    """scipy.integrate.odeint(func, y0, t, args=(), **kwargs), differentiable with respect to
    y0, t and args by the adjoint method, as autograd's.

    `func(y, t, *args)` is written with jitgrad.numpy and runs on plain arrays, out of the
    kernel: a traced value it needs comes in through `args` (arrays, numbers, and tuples, lists
    and dicts of them; their float leaves are differentiated, other leaves such as ints are
    passed as they are).  SciPy's options pass through (`full_output` on plain arrays only).
    Gradients, `make_jvp` and `jacobian` work; second derivatives through odeint are a
    TracingError.

    >>> import jitgrad.numpy as np
    >>> from jitgrad import grad
    >>> def decay(y, t, k):
    ...     return -k * y
    >>> def y1(k):  # y(1) = exp(-k), dy(1)/dk = -exp(-k)
    ...     return odeint(decay, np.array([1.0]), np.array([0.0, 1.0]), (k,))[1, 0]
    >>> round(grad(y1)(0.5), 6)
    -0.606531
    """
    if not isinstance(args, tuple):
        raise TypeError("scipy.integrate.odeint: extra arguments must be in a tuple "
                        "(args=(a,))")
    _check_func(func)
    if not _has_tracer((y0, t, args)):
        return _integrate.odeint(func, y0, t, args=args, **kwargs)
    if any(_has_tracer(v) for v in kwargs.values()):
        raise TracingError(f"scipy.integrate.odeint: the options {sorted(kwargs)} must be plain "
                           f"values, not traced ones (at {user_frame()})")
    if kwargs.get("full_output"):
        raise TracingError(f"scipy.integrate.odeint: full_output=True is not supported on "
                           f"traced values (at {user_frame()})")
    y0 = np.array(y0) if isinstance(y0, (list, tuple)) else y0
    t = np.array(t) if isinstance(t, (list, tuple)) else t
    if onp.ndim(y0) > 1 or onp.ndim(t) != 1:
        raise ValueError(f"scipy.integrate.odeint: y0 must be a number or a 1-D array (shape "
                         f"{onp.shape(y0)}) and t a 1-D array (shape {onp.shape(t)})")
    problem = _Problem(func, y0, t, args, kwargs)
    return apply(_solve, problem.packed, problem.index, problem=problem)


def __getattr__(name):
    """SciPy's other integrate functions: their own, on plain arrays only."""
    fn = getattr(_integrate, name)
    if not callable(fn) or isinstance(fn, type):
        return fn

    def on_plain_arrays(*args, **kwargs):
        if any(_has_tracer(a) for a in list(args) + list(kwargs.values())):
            raise TracingError(f"scipy.integrate.{name} is not supported on traced values (at "
                               f"{user_frame()})")
        return fn(*args, **kwargs)

    on_plain_arrays.__name__ = name
    on_plain_arrays.__doc__ = fn.__doc__
    return on_plain_arrays
