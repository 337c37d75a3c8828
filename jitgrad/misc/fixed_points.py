"""`fixed_point(f, a, x0, distance, tol)`: iterate `x = f(a)(x)` from `x0` until
`distance(x, x_prev) <= tol` (autograd.misc.fixed_points), as one compiled loop.

Differentiated as autograd does, implicitly: the cotangent w of the fixed point x* solves
w = g + (df(a)/dx at x*)^T w, found by a second fixed-point iteration with the same `distance`
and `tol`, and the gradient with respect to `a` is (df(a)/da at x*)^T w.  The forward
iterations are not stored, the gradient with respect to `x0` is zero, and the result is the
derivative of the exact fixed point (not of the finite iteration that approximates it).
Second derivatives differentiate this adjoint iteration in turn.  A fixed point carrying
integer values is differentiated through its iterations instead."""

from __future__ import annotations

from ..control import converted_call, emit_while
from ..errors import TracingError
from ..trace import flatten, innermost_trace, unflatten, user_frame


def fixed_point(f, a, x0, distance, tol):
    """The fixed point of `f(a)` reached from `x0`, to tolerance `tol` under `distance`."""
    step = f(a)
    if innermost_trace() is None:  # plain values: autograd's loop
        x, x_prev = step(x0), x0
        while distance(x, x_prev) > tol:
            x, x_prev = step(x), x
        return x
    where = user_frame()
    leaves: list = []
    tree = flatten(x0, leaves)
    n = len(leaves)

    def iterate(*values):
        out: list = []
        if flatten(converted_call(step, unflatten(tree, iter(values[:n]))), out) != tree:
            raise TracingError(f"fixed_point at {where}: f(a) returned a different structure "
                               f"than x0")
        return out + list(values[:n])

    def not_converged(*values):
        x, x_prev = unflatten(tree, iter(values[:n])), unflatten(tree, iter(values[n:]))
        return converted_call(distance, x, x_prev) > tol

    first = iterate(*leaves)
    final = emit_while(not_converged, iterate, first, where, adjoint="fixed_point")
    return unflatten(tree, iter(final[:n]))
