"""`check_grads(fun, argnum=0, modes=None, order=2)(*args)`: autograd's gradient checker
(`autograd.test_util`), for testing your own primitives and functions.

Reverse mode ("rev"): for random directions u (outputs) and v (inputs), <u, J v> by central
differences must equal <vjp(u), v>; order 2 checks the VJP of the VJP, and so on.  "fwd" checks
J v against central differences too; jitgrad has no forward mode yet, so J v is computed by
transposing the VJP (the gradient of u -> <vjp(u), v>), which checks the same rules once more.
Real-valued arguments and results (arrays, numbers, and tuples/lists/dicts of them)."""

from __future__ import annotations

import numpy as np

from .api import grad, make_vjp
from .misc.flatten import flatten

TOL = 1e-6
RTOL = 1e-6
EPS = 1e-6


def scalar_close(a, b) -> bool:
    return abs(a - b) < TOL or abs(a - b) / abs(a + b) < RTOL


def _inner(a, b) -> float:
    return float(np.vdot(flatten(a)[0], flatten(b)[0]))


def _random_like(x, rng):
    flat, unflatten = flatten(x)
    return unflatten(rng.standard_normal(flat.shape))


def _plus(x, v, scale):
    flat, unflatten = flatten(x)
    return unflatten(flat + scale * flatten(v)[0])


def _numerical_jvp(f, x, v):
    return _scaled_difference(f(_plus(x, v, EPS / 2)), f(_plus(x, v, -EPS / 2)))


def _scaled_difference(a, b):
    fa, unflatten = flatten(a)
    return unflatten((fa - flatten(b)[0]) / EPS)


def check_vjp(f, x, rng) -> None:
    vjp, y = make_vjp(f)(x)
    u, v = _random_like(y, rng), _random_like(x, rng)
    exact = _inner(vjp(u), v)
    numeric = _inner(u, _numerical_jvp(f, x, v))
    assert scalar_close(numeric, exact), (
        f"VJP check of {getattr(f, '__name__', f)} failed at {x}:\n"
        f"analytic: {exact}\nnumeric:  {numeric}")


def check_jvp(f, x, rng) -> None:
    vjp, y = make_vjp(f)(x)
    v = _random_like(x, rng)
    flat_y, unflatten_y = flatten(y)
    jv = grad(lambda u: _inner_traced(vjp(unflatten_y(u)), v))(flat_y)
    numeric = flatten(_numerical_jvp(f, x, v))[0]
    w = rng.standard_normal(flat_y.shape)
    assert scalar_close(float(np.dot(jv, w)), float(np.dot(numeric, w))), (
        f"JVP check of {getattr(f, '__name__', f)} failed at {x}:\n"
        f"analytic: {jv}\nnumeric:  {numeric}")


def _inner_traced(a, b):
    from . import numpy as jnp

    return jnp.sum(flatten(a)[0] * flatten(b)[0])


def check_grads(fun, argnum=0, modes=None, order=2):
    """autograd's check_grads: `check_grads(f, modes=["rev"], order=2)(*args)`."""
    modes = ["fwd", "rev"] if modes is None else list(modes)
    if not all(m in ("fwd", "rev") for m in modes):
        raise ValueError(f"check_grads: modes must be 'fwd' and/or 'rev', got {modes}")

    def check(*args, **kwargs):
        rng = np.random.default_rng(0)
        argnums = argnum if isinstance(argnum, (tuple, list)) else (argnum,)
        x = tuple(args[i] for i in argnums)

        def unary(x):
            full = list(args)
            for i, xi in zip(argnums, x):
                full[i] = xi
            return fun(*full, **kwargs)

        x = x if isinstance(argnum, (tuple, list)) else x[0]
        f = unary if isinstance(argnum, (tuple, list)) else (
            lambda xi: unary((xi,)))
        _check(f, x, modes, order, rng)

    return check


def _check(f, x, modes, order, rng) -> None:
    if "fwd" in modes:
        check_jvp(f, x, rng)
    if "rev" in modes:
        check_vjp(f, x, rng)
        if order > 1:
            u = _random_like(f(x), rng)

            def vjp_of_f(x, u):
                return make_vjp(f)(x)[0](u)

            _check(lambda xu: vjp_of_f(*xu), (x, u), ["rev"], order - 1, rng)
