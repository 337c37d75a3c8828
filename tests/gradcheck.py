"""Gradient checks for jitgrad's tests, in the spirit of autograd's ``check_grads``.

``check_grads(f, *args, argnum=...)`` runs ``value_and_grad(f, argnum)(*args)`` once and checks:

* the value equals ``f(*args)`` evaluated eagerly (``jitgrad.numpy`` functions also work on
  plain NumPy arrays, so the same ``f`` is its own reference);
* the gradient has the structure of the differentiated arguments: the same tuples/lists/dicts,
  an ndarray of the same shape and float64 dtype for every array leaf (a 0-d array or a NumPy
  float64 for a 0-d array), a Python float for every float leaf, and only finite numbers;
* for a few random unit directions ``v`` (one per check, spanning every differentiated leaf at
  once) the directional derivative ``vdot(grad, v)`` agrees with the central finite difference
  ``(f(x + eps v) - f(x - eps v)) / (2 eps)``;
* neither the call nor the reference evaluation modified the arguments;
* forward mode agrees: for one random tangent per differentiated argument, ``make_jvp``'s
  tangent (run with the IR interpreter: it checks the forward-mode transform, not Numba) equals
  ``vdot(grad, v)`` to 1e-9.

When a directional check fails, the message reports a coordinate-wise finite-difference
gradient of each leaf next to the computed one, so the wrong elements can be seen.

The differentiation backend defaults to ``jitgrad``; pass ``ad=autograd`` (with ``f`` written
against ``autograd.numpy``) to validate this module itself.
"""

from __future__ import annotations

import contextlib
import math

import numpy

__all__ = [
    "check_against_autograd",
    "check_grads",
    "check_not_modified",
    "check_second_order",
    "not_modified",
    "tree_flatten",
    "tree_unflatten",
]

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-8
N_DIRECTIONS = 3
# Rounding in evaluating f at x +- eps v: allow ~100 ulp of |f| per evaluation, divided by 2 eps.
_ROUNDOFF_ULPS = 100.0


# ------------------------------------------------------------------------------------------------
# Argument structures (tuples, lists, dicts, namedtuples of leaves)
# ------------------------------------------------------------------------------------------------


def tree_flatten(obj):
    """``(leaves, treedef)``; ``treedef`` compares equal for equal structures."""
    leaves: list = []
    return leaves, _flatten(obj, leaves)


def _flatten(obj, leaves):
    t = type(obj)
    if t is tuple or t is list:
        return (t, tuple(_flatten(c, leaves) for c in obj))
    if t is dict:
        return (dict, tuple(obj), tuple(_flatten(obj[k], leaves) for k in obj))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return (t, tuple(_flatten(c, leaves) for c in obj))
    leaves.append(obj)
    return None


def tree_unflatten(treedef, leaves):
    it = iter(leaves)
    out = _unflatten(treedef, it)
    rest = list(it)
    if rest:
        raise ValueError(f"{len(rest)} leaves left over")
    return out


def _unflatten(tree, it):
    if tree is None:
        return next(it)
    t = tree[0]
    if t is dict:
        return {k: _unflatten(c, it) for k, c in zip(tree[1], tree[2])}
    children = [_unflatten(c, it) for c in tree[1]]
    if t is tuple or t is list:
        return t(children)
    return t(*children)


def _leaf_paths(obj, prefix=""):
    """Readable paths of the leaves, in flattening order: ``[0]['W'][1]``."""
    t = type(obj)
    if t is tuple or t is list or (isinstance(obj, tuple) and hasattr(obj, "_fields")):
        return [p for i, c in enumerate(obj) for p in _leaf_paths(c, f"{prefix}[{i}]")]
    if t is dict:
        return [p for k in obj for p in _leaf_paths(obj[k], f"{prefix}[{k!r}]")]
    return [prefix]


def _describe(leaf) -> str:
    if isinstance(leaf, numpy.ndarray):
        return f"ndarray{leaf.shape}:{leaf.dtype}"
    return type(leaf).__name__


# ------------------------------------------------------------------------------------------------
# Mutation checks
# ------------------------------------------------------------------------------------------------


def _snapshot(args):
    leaves, treedef = tree_flatten(args)
    return treedef, [numpy.array(x, copy=True) if isinstance(x, numpy.ndarray) else x
                     for x in leaves]


def _assert_same_as_snapshot(args, snap, what: str) -> None:
    treedef, before = snap
    leaves, now_def = tree_flatten(args)
    assert now_def == treedef, f"{what} changed the structure of its arguments"
    for path, old, new in zip(_leaf_paths(args, "args"), before, leaves):
        if isinstance(old, numpy.ndarray):
            assert isinstance(new, numpy.ndarray), f"{what} replaced {path}"
            assert new.shape == old.shape and new.dtype == old.dtype, (
                f"{what} changed {path} from {_describe(old)} to {_describe(new)}")
            assert numpy.array_equal(new, old, equal_nan=True), (
                f"{what} modified its argument {path} in place:\nbefore {old!r}\nafter  {new!r}")
        else:
            same = new == old or (_is_nan(new) and _is_nan(old))
            assert type(new) is type(old) and same, (
                f"{what} changed {path} from {old!r} to {new!r}")


def _is_nan(value) -> bool:
    return isinstance(value, (float, numpy.floating)) and math.isnan(value)


@contextlib.contextmanager
def not_modified(*args, what: str = "the call"):
    """``with not_modified(x, params): ...`` asserts the block left every array leaf of the
    given objects exactly as it was (values, shape, dtype)."""
    snap = _snapshot(args)
    yield
    _assert_same_as_snapshot(args, snap, what)


def check_not_modified(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``, assert it did not modify any argument, return its result."""
    with not_modified(args, kwargs, what=getattr(fn, "__name__", "the call")):
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# The gradient check
# ------------------------------------------------------------------------------------------------


def _default_ad():
    import jitgrad

    return jitgrad


def _perturb(leaf, step):
    """``leaf + step`` keeping the leaf's kind: ndarrays stay float64 ndarrays (0-d included),
    Python floats stay Python floats."""
    if isinstance(leaf, numpy.ndarray):
        return numpy.array(numpy.asarray(leaf, dtype=numpy.float64) + step, dtype=numpy.float64)
    return float(leaf) + float(step)


def _as_float(value, what):
    assert numpy.ndim(value) == 0, f"{what} is not a scalar: {value!r}"
    value = numpy.asarray(value)
    assert value.dtype.kind in "fiu", f"{what} has dtype {value.dtype}: {value!r}"
    return float(value)


def _check_grad_structure(g, arg, argnum, strict_types) -> list:
    """The gradient's leaves, after checking they mirror the argument's."""
    name = f"gradient for argument {argnum}"
    arg_leaves, arg_def = tree_flatten(arg)
    g_leaves, g_def = tree_flatten(g)
    assert g_def == arg_def, (
        f"{name} has structure {g_def}, the argument {arg_def}\n  gradient: {g!r}")
    paths = _leaf_paths(arg, f"arg{argnum}")
    for path, x, gl in zip(paths, arg_leaves, g_leaves):
        if isinstance(x, numpy.ndarray):
            assert numpy.shape(gl) == x.shape, (
                f"gradient of {path} has shape {numpy.shape(gl)}, the argument {x.shape}")
            if strict_types or x.ndim > 0:
                # A 0-d argument may get a 0-d array or a NumPy float64 scalar (as autograd
                # returns); anything else gets an ndarray.
                kinds = (numpy.ndarray, numpy.float64) if x.ndim == 0 else numpy.ndarray
                assert isinstance(gl, kinds), (
                    f"gradient of {path} (an ndarray{x.shape}) is a {type(gl).__name__}: {gl!r}")
                assert gl.dtype == numpy.float64, (
                    f"gradient of {path} has dtype {gl.dtype}, expected float64")
        else:
            if strict_types:
                assert isinstance(gl, float), (
                    f"gradient of {path} (a Python {type(x).__name__}) is a "
                    f"{_describe(gl)}, expected a Python float: {gl!r}")
            else:
                assert numpy.ndim(gl) == 0, f"gradient of {path} is not a scalar: {gl!r}"
        assert numpy.all(numpy.isfinite(gl)), f"gradient of {path} is not finite: {gl!r}"
    return [numpy.asarray(gl, dtype=numpy.float64) for gl in g_leaves]


def check_grads(f, *args, argnum=0, rtol=RTOL, atol=ATOL, eps=EPS, n_directions=N_DIRECTIONS,
                seed=0, value_rtol=1e-10, ad=None, strict_types=True, forward=True):
    """Check ``ad.value_and_grad(f, argnum)(*args)`` against ``f`` itself; see the module doc.

    ``argnum`` is an int or a tuple of ints (then the gradient is a tuple).  Every numeric leaf of
    the differentiated arguments is perturbed.  Returns ``(value, gradient)``.
    """
    ad = _default_ad() if ad is None else ad
    argnums = (argnum,) if isinstance(argnum, int) else tuple(argnum)
    assert argnums and all(0 <= a < len(args) for a in argnums), f"bad argnum {argnum!r}"

    snap = _snapshot(args)
    value, grad = ad.value_and_grad(f, argnum)(*args)
    _assert_same_as_snapshot(args, snap, "value_and_grad")

    # Value: equal to f evaluated on the NumPy arguments.
    expected = f(*args)
    _assert_same_as_snapshot(args, snap, "evaluating f on NumPy arrays")
    expected = _as_float(expected, "f(*args) evaluated with NumPy")
    got = _as_float(value, "the value returned by value_and_grad")
    assert math.isclose(got, expected, rel_tol=value_rtol, abs_tol=value_rtol), (
        f"value_and_grad's value {got!r} != f(*args) = {expected!r}")

    # Gradient structure.
    if isinstance(argnum, int):
        grads = (grad,)
    else:
        assert isinstance(grad, tuple) and len(grad) == len(argnums), (
            f"argnum={argnum!r}: expected a tuple of {len(argnums)} gradients, got {grad!r}")
        grads = grad
    g_leaves = []  # over all differentiated arguments, in argnums order
    x_leaves = []
    paths = []
    for a, g in zip(argnums, grads):
        g_leaves += _check_grad_structure(g, args[a], a, strict_types)
        leaves, _ = tree_flatten(args[a])
        x_leaves += leaves
        paths += _leaf_paths(args[a], f"arg{a}")

    def f_at(step_leaves, scale):
        new_args = list(args)
        i = 0
        for a in argnums:
            leaves, treedef = tree_flatten(args[a])
            moved = [_perturb(x, scale * v) for x, v in zip(leaves, step_leaves[i:i + len(leaves)])]
            i += len(leaves)
            new_args[a] = tree_unflatten(treedef, moved)
        return _as_float(f(*new_args), "f at a perturbed point")

    rng = numpy.random.default_rng(seed)
    failures = []
    for d in range(n_directions):
        v = [rng.standard_normal(numpy.shape(x)) for x in x_leaves]
        norm = math.sqrt(sum(float(numpy.sum(vi * vi)) for vi in v))
        v = [vi / norm for vi in v]
        f_plus, f_minus = f_at(v, eps), f_at(v, -eps)
        numeric = (f_plus - f_minus) / (2 * eps)
        analytic = float(sum(numpy.vdot(gl, vi) for gl, vi in zip(g_leaves, v)))
        roundoff = _ROUNDOFF_ULPS * numpy.finfo(numpy.float64).eps * max(
            abs(f_plus), abs(f_minus), abs(expected)) / (2 * eps)
        tol = atol + rtol * max(abs(numeric), abs(analytic)) + roundoff
        if not abs(numeric - analytic) <= tol:
            failures.append(f"direction {d}: vdot(grad, v) = {analytic!r}, finite difference "
                            f"= {numeric!r}, |diff| = {abs(numeric - analytic):.3g} > tol "
                            f"{tol:.3g}")
    if failures:
        raise AssertionError(
            "gradient does not match finite differences\n  " + "\n  ".join(failures) + "\n"
            + _coordinate_report(f_at, x_leaves, g_leaves, paths, eps))
    if forward and ad is _default_ad():
        _check_forward_mode(f, args, argnums, grads, rng)
    return value, grad


def _check_forward_mode(f, args, argnums, grads, rng):
    """make_jvp's tangent along a random direction v against vdot(grad, v), argument by
    argument, interpreted."""
    import jitgrad

    for a, g in zip(argnums, grads):
        leaves, treedef = tree_flatten(args[a])
        v = [rng.standard_normal(numpy.shape(x)) if isinstance(x, numpy.ndarray)
             else float(rng.standard_normal()) for x in leaves]
        expected = float(sum(numpy.vdot(numpy.asarray(gl, dtype=float), vi)
                             for gl, vi in zip(tree_flatten(g)[0], v)))
        with jitgrad.execution("interpret"):
            _, tangent = jitgrad.make_jvp(f, a)(*args)(tree_unflatten(treedef, v))
        tangent = _as_float(tangent, "make_jvp's tangent")
        assert math.isclose(tangent, expected, rel_tol=1e-9, abs_tol=1e-11), (
            f"forward mode: make_jvp's tangent for argument {a} is {tangent!r}, "
            f"vdot(grad, v) = {expected!r}")


def _coordinate_report(f_at, x_leaves, g_leaves, paths, eps, max_size=2000):
    """Coordinate-wise finite differences of each leaf, for the failure message."""
    total = sum(int(numpy.size(x)) for x in x_leaves)
    if total > max_size:
        return f"(no coordinate-wise report: {total} elements)"
    sizes = [int(numpy.size(x)) for x in x_leaves]
    zero = [numpy.zeros(numpy.shape(x)) for x in x_leaves]
    lines = []
    for k, (x, g, path) in enumerate(zip(x_leaves, g_leaves, paths)):
        num = numpy.zeros(numpy.shape(x))
        for idx in numpy.ndindex(numpy.shape(x)):
            e = [z.copy() for z in zero]
            e[k][idx] = 1.0
            num[idx] = (f_at(e, eps) - f_at(e, -eps)) / (2 * eps)
        err = numpy.abs(num - g)
        worst = numpy.unravel_index(int(numpy.argmax(err)), err.shape) if err.size else ()
        with numpy.printoptions(precision=6, suppress=True, linewidth=100, threshold=200):
            lines.append(
                f"{path} (size {sizes[k]}): max |numeric - computed| = "
                f"{float(err.max()) if err.size else 0.0:.3g} at index "
                f"{tuple(int(i) for i in worst)}"
                f"\n    computed: {numpy.array2string(numpy.asarray(g), prefix='    computed: ')}"
                f"\n    numeric:  {numpy.array2string(num, prefix='    numeric:  ')}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Comparison with autograd (for points where finite differences are invalid, such as ties)
# ------------------------------------------------------------------------------------------------


def check_against_autograd(make_f, *args, argnum=0, rtol=1e-10, atol=1e-12):
    """``make_f(np_module)`` returns the loss written against that module.  Compares jitgrad's
    ``value_and_grad`` of ``make_f(jitgrad.numpy)`` with autograd's of ``make_f(autograd.numpy)``
    (values and every gradient leaf), and checks jitgrad's gradient structure."""
    import autograd
    import autograd.numpy as anp

    import jitgrad
    import jitgrad.numpy as jnp

    argnums = (argnum,) if isinstance(argnum, int) else tuple(argnum)
    snap = _snapshot(args)
    value, grad = jitgrad.value_and_grad(make_f(jnp), argnum)(*args)
    _assert_same_as_snapshot(args, snap, "value_and_grad")
    ref_value, ref_grad = autograd.value_and_grad(make_f(anp), argnum)(*args)
    got = _as_float(value, "the value returned by value_and_grad")
    assert math.isclose(got, float(ref_value), rel_tol=rtol, abs_tol=atol), (
        f"value {got!r} != autograd's {float(ref_value)!r}")
    grads = (grad,) if isinstance(argnum, int) else grad
    ref_grads = (ref_grad,) if isinstance(argnum, int) else ref_grad
    assert len(grads) == len(argnums), f"expected {len(argnums)} gradients, got {grad!r}"
    for a, g, rg in zip(argnums, grads, ref_grads):
        g_leaves = _check_grad_structure(g, args[a], a, strict_types=True)
        rg_leaves, _ = tree_flatten(rg)
        for path, gl, rl in zip(_leaf_paths(args[a], f"arg{a}"), g_leaves, rg_leaves):
            numpy.testing.assert_allclose(
                gl, numpy.asarray(rl, dtype=numpy.float64), rtol=rtol, atol=atol,
                err_msg=f"gradient of {path} differs from autograd's")
    return value, grad


def check_second_order(f, *args, argnum=0, seed=1, **options):
    """Check the VJP of the VJP: the gradient of ``x -> sum(grad(f)(x) * v)`` for a fixed random
    ``v``, against central differences of that function (``check_grads``).  ``argnum`` is an int;
    the differentiated argument is a float or a float array."""
    import jitgrad
    import jitgrad.numpy as jnp

    x = args[argnum]
    v = numpy.random.default_rng(seed).standard_normal(numpy.shape(x))
    inner = jitgrad.grad(f, argnum)

    def directional(*a):
        return jnp.sum(inner(*a) * v)

    # (forward mode over this second derivative would need a third one: not checked here)
    return check_grads(directional, *args, argnum=argnum, **{"forward": False, **options})
