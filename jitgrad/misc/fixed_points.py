"""`fixed_point(f, a, x0, distance, tol)`: iterate `x = f(a)(x)` from `x0` until
`distance(x, x_prev) <= tol` (autograd.misc.fixed_points), as one compiled loop
(`jitgrad.while_loop`) that is differentiated in reverse mode through its iterations.

autograd differentiates it implicitly (a second fixed-point iteration for the adjoint); here the
adjoint runs back through the stored iterations, which gives the derivative of the iterates
themselves.  Second derivatives through the loop are not supported yet."""

from __future__ import annotations

from ..control import while_loop


def fixed_point(f, a, x0, distance, tol):
    """The fixed point of `f(a)` reached from `x0`, to tolerance `tol` under `distance`."""
    step = f(a)

    def not_converged(state):
        x, x_prev = state
        return distance(x, x_prev) > tol

    def iterate(state):
        x, _ = state
        return step(x), x

    x, _ = while_loop(not_converged, iterate, (step(x0), x0))
    return x
