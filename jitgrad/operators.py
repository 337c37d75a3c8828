"""autograd's other derivative operators (`autograd.differential_operators`), composed from
`grad`, `make_vjp` and forward mode, with autograd's names and signatures.

Each composition is traced as one function, so it compiles into one kernel per signature (the
inner derivatives are inlined into the outer trace), and that kernel is reused on every call.

Jacobian-vector products (`make_jvp`, `deriv`) are forward mode (jitgrad/forward.py): the tangent
is carried through the same fused loops as the value, one pass.  `make_jvp_reversemode` is the
transposition trick autograd also offers: u -> vjp(u) is linear, so the VJP of the VJP is the
JVP (about two reverse passes).
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from .api import grad, make_vjp
from .errors import ArgumentError

__all__ = ["make_jvp", "jvp", "make_jvp_reversemode", "deriv", "make_hvp", "hessian_tensor_product",
           "tensor_jacobian_product", "vector_jacobian_product", "make_ggnvp", "grad_and_aux",
           "grad_named", "checkpoint"]


def _zeros_like(tree):
    """Zeros of the structure and shapes of `tree` (a value or a tuple/list/dict of them)."""
    from .trace import flatten, unflatten

    leaves: list = []
    structure = flatten(tree, leaves)
    return unflatten(structure, iter([np.zeros(np.shape(x)) if np.shape(x) else 0.0
                                      for x in leaves]))


def make_jvp(fun, argnum=0):
    """`make_jvp(f, argnum)(*args)` returns `jvp`, with `jvp(v) = (f(*args), J v)`: the
    Jacobian of f w.r.t. argument `argnum` times the tangent `v`, of that argument's structure
    (autograd.make_jvp).  Forward mode: one compiled kernel computes both in one pass, for
    every `v`."""
    if not isinstance(argnum, (int, np.integer)) or isinstance(argnum, bool):
        raise ArgumentError("make_jvp: argnum must be an int")
    return _jvp_maker(fun, int(argnum), fun, "make_jvp")


def _jvp_maker(fun, argnum, owner, tag):
    """make_jvp's maker, its kernels cached under `owner` and `tag`."""
    from .api import _GradFunction, _leaves_of
    from .trace import Tracer

    inner = _GradFunction(fun, int(argnum), with_value=True, kind="jvp")
    compiled: dict = {}

    def value_and_tangent(*args_and_v, **kwargs):
        *args, v = args_and_v
        return inner.jvp_traced(tuple(args), kwargs, v)

    functools.update_wrapper(value_and_tangent, fun)

    @functools.wraps(fun)
    def maker(*args, **kwargs):
        if any(isinstance(leaf, Tracer) for leaf in _leaves_of((args, kwargs))):
            return lambda v: inner.jvp_traced(args, kwargs, v)  # inside a trace: inlined
        n = len(args)
        if not -n <= argnum < n:
            raise ArgumentError(f"make_jvp of {inner.name}: argnum {argnum} is out of range "
                                f"for {n} positional arguments")
        position = int(argnum) % n
        if position not in compiled:
            compiled[position] = _GradFunction(
                value_and_tangent, position, with_value=False, kind="value",
                cache=(owner, (tag, position))).function()
        run = compiled[position]

        def jvp(v):
            if any(isinstance(leaf, Tracer) for leaf in _leaves_of(v)):
                return inner.jvp_traced(args, kwargs, v)
            return run(*args, v, **kwargs)

        return jvp

    return maker


def jvp(fun, primals, tangents):
    """JAX's `jvp`: `(fun(*primals), J tangents)`, forward mode with respect to every positional
    argument at once; `primals` and `tangents` are tuples (or lists) of the same structure.  The
    kernel is compiled once per signature and kept with `fun`.

    >>> import jitgrad.numpy as np
    >>> jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    if not callable(fun):
        raise ArgumentError(f"jvp: the function to differentiate is a {type(fun).__name__}, not "
                            f"a function")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise ArgumentError("jvp(fun, primals, tangents): primals and tangents must be tuples "
                            "(or lists) of fun's arguments and their tangents")
    if len(primals) != len(tangents):
        raise ArgumentError(f"jvp of {getattr(fun, '__name__', 'fun')}: {len(primals)} primals "
                            f"but {len(tangents)} tangents")

    def on_all_arguments(arguments):
        return fun(*arguments)

    functools.update_wrapper(on_all_arguments, fun)
    maker = _jvp_maker(on_all_arguments, 0, fun, ("jvp", len(primals)))
    return maker(tuple(primals))(tuple(tangents))


def make_jvp_reversemode(fun, argnum=0):
    """autograd.make_jvp_reversemode: the JVP by transposing the VJP (u -> vjp(u) is linear, so
    the VJP of the VJP, at any u, is the JVP); about two reverse passes."""
    if not isinstance(argnum, (int, np.integer)):
        raise ArgumentError("make_jvp: argnum must be an int")
    forward = make_vjp(fun, argnum)

    def value_and_linear_map(*args_and_u, **kwargs):
        *args, u = args_and_u
        vjp, ans = make_vjp(fun, argnum)(*args, **kwargs)
        return vjp(u), ans  # linear in u: its VJP with respect to u is the JVP

    transposed = make_vjp(value_and_linear_map, -1)

    @functools.wraps(fun)
    def maker(*args, **kwargs):
        _, ans = forward(*args, **kwargs)  # for the output's structure
        vjp_t, (_, out) = transposed(*args, _zeros_like(ans), **kwargs)
        zeros = _zeros_like(out)

        def jvp(v):
            return out, vjp_t((v, zeros))

        return jvp

    return maker




def deriv(fun, argnum=0):
    """autograd.deriv: the JVP with a tangent of ones (the derivative of a scalar function)."""
    jvp_maker = make_jvp(fun, argnum)

    @functools.wraps(fun)
    def derivative(*args, **kwargs):
        x = args[argnum]
        ones = np.ones(np.shape(x)) if np.shape(x) else 1.0
        return jvp_maker(*args, **kwargs)(ones)[1]

    return derivative


def make_hvp(fun, argnum=0):
    """autograd.make_hvp: `make_hvp(f, argnum)(*args)` returns `(hvp, grad f(*args))`, where
    `hvp(v)` is the Hessian-vector product at that point."""
    return make_vjp(grad(fun, argnum), argnum)


def hessian_tensor_product(fun, argnum=0):
    """autograd.hessian_tensor_product: `(*args, tensor)` -> H tensor, contracting the last
    `ndim(tensor)` axes of the gradient with `tensor` (no Hessian is formed)."""
    from . import numpy as jnp

    fun_grad = grad(fun, argnum)

    def vector_dot_grad(*args, **kwargs):
        args, vector = args[:-1], args[-1]
        return jnp.sum(fun_grad(*args, **kwargs) * vector)

    return grad(functools.update_wrapper(vector_dot_grad, fun), argnum)


def tensor_jacobian_product(fun, argnum=0):
    """autograd.tensor_jacobian_product (and vector_jacobian_product): `(*args, tensor)` ->
    `tensor` times the Jacobian, i.e. the VJP of `tensor` (of the output's shape)."""
    maker = make_vjp(fun, argnum)

    @functools.wraps(fun)
    def product(*args, **kwargs):
        args, tensor = args[:-1], args[-1]
        return maker(*args, **kwargs)[0](tensor)

    return product


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f, g=None, f_argnum=0):
    """autograd.make_ggnvp: `make_ggnvp(f, g)(*args)` returns `v -> J^T H_g J v`, the
    generalized Gauss-Newton product of the loss `g(f(x))` (default g: half the squared norm
    over the last axis)."""
    from . import numpy as jnp

    if g is None:
        def g(y):
            return 0.5 * jnp.sum(y ** 2, axis=-1)

    f_jvp_maker = make_jvp(f, f_argnum)
    g_hvp_maker = make_hvp(g)

    @functools.wraps(f)
    def maker(*args, **kwargs):
        f_vjp, f_x = make_vjp(f, f_argnum)(*args, **kwargs)
        g_hvp, _ = g_hvp_maker(f_x)
        f_jvp = f_jvp_maker(*args, **kwargs)

        def ggnvp(v):
            return f_vjp(g_hvp(f_jvp(v)[1]))

        return ggnvp

    return maker


def grad_and_aux(fun, argnum=0):
    """autograd.grad_and_aux: for `fun` returning `(loss, aux)`, a function returning
    `(grad of loss, aux)`; one kernel computes both."""
    maker = make_vjp(fun, argnum)

    @functools.wraps(fun)
    def gradient_and_aux(*args, **kwargs):
        vjp, (ans, aux) = maker(*args, **kwargs)
        from .trace import flatten, unflatten

        leaves: list = []
        tree = flatten(aux, leaves)
        zeros = unflatten(tree, iter([_zeros_like(leaf) for leaf in leaves]))
        return vjp((1.0, zeros)), aux

    return gradient_and_aux


def grad_named(fun, argname: str):
    """autograd.grad_named: the gradient with respect to the argument named `argname`."""
    names = list(inspect.signature(fun).parameters)
    if argname not in names:
        raise ArgumentError(f"grad_named: {getattr(fun, '__name__', fun)} has no argument "
                            f"named {argname!r} (it has {names})")
    return grad(fun, names.index(argname))


def checkpoint(fun):
    """autograd.checkpoint: `fun`, differentiated without storing its intermediate values: the
    reverse pass computes them again from `fun`'s arguments (arxiv.org/abs/1604.06174), trading
    time for memory.  Inside a traced function, `fun`'s body becomes one step of a loop over
    its arguments (a scan of length 1, compiled as its own function), whose adjoint keeps only
    that step's inputs and recomputes the rest.  Outside a trace, it is `fun`."""
    from .control import converted_call, emit_scan, trace_region, type_of
    from .trace import Tracer, flatten, unflatten

    if not callable(fun):
        raise ArgumentError(f"checkpoint takes the function to recompute, not a "
                            f"{type(fun).__name__} (use it as @checkpoint or checkpoint(f))")

    @functools.wraps(fun)
    def checkpointed(*args, **kwargs):
        leaves: list = []
        tree = flatten((args, kwargs), leaves)
        traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tracer)]
        if not traced:
            return converted_call(fun, *args, **kwargs)
        rows = [leaves[i] for i in traced]
        out_tree: list = []

        def step(*values):
            given = list(leaves)
            for i, v in zip(traced, values):
                given[i] = v
            a, kw = unflatten(tree, iter(given))
            outs: list = []
            out_tree[:] = [flatten(converted_call(fun, *a, **kw), outs)]
            for o in outs:
                if not isinstance(o, Tracer) and not isinstance(o, (float, int, np.ndarray,
                                                                   np.number)):
                    raise ArgumentError(f"checkpoint of {getattr(fun, '__name__', fun)}: it "
                                        f"returned a {type(o).__name__}; a checkpointed "
                                        f"function returns arrays and numbers")
            return outs

        # The outputs' types, from a trace of the body that is thrown away.
        _, _, outs = trace_region(step, [type_of(r) for r in rows], "checkpoint")
        types = [type_of(o) for o in outs]
        stacked = [r.reshape((1,) + tuple(r.shape)) for r in rows]
        _, ys = emit_scan(step, stacked, 1, [], types, reverse=False, name="checkpoint")
        results = [y.reshape(shape) for y, (shape, _) in zip(ys, types)]
        return unflatten(out_tree[0], iter(results))

    return checkpointed
