"""jitgrad's derivative operators beyond the gradient, every contender side by side in one process.

Run from the repository root::

    python -m benchmarks.derivatives                      # all four workloads, about 2-4 minutes
    python -m benchmarks.derivatives --quick              # 3 short repeats (a smoke run)
    python -m benchmarks.derivatives --only hvp-logreg,hessian-50
    python -m benchmarks.derivatives --contenders jitgrad,jax   # hand-numpy always runs
    python -m benchmarks.derivatives --check              # tiny sizes: correctness only, exit 1 on
                                                          # any disagreement or error

Workloads (float64 throughout, data seeded):

* ``hvp-logreg``: the Hessian-vector product ``H v`` of autograd's logistic-regression loss (the
  ``logreg`` problem of ``problems.py``: ``inputs`` 20,000 x 100 and 0/1 ``targets`` in the
  closure, the 100 weights differentiated), ``v`` standard normal.  jitgrad twice:
  ``hessian_vector_product(loss)(w, v)`` (reverse over reverse, the gradient of ``<grad f, v>``)
  and ``make_jvp(grad(loss))(w)(v)`` (forward over reverse; it also returns the gradient).
  autograd's ``hessian_vector_product``; ``jax.jit`` of ``jax.jvp`` of ``jax.grad``;
  ``torch.func.jvp(torch.func.grad(loss))``.  By hand: with ``s = sigmoid(X w)`` and 0/1
  targets, ``H = X^T diag(s (1 - s)) X``, so ``H v = X^T (s (1 - s) * (X v))``: in NumPy (three
  BLAS matrix-vector products) and in Numba (one pass over the rows of X, both dot products and
  the update of ``H v`` fused).
* ``jacobian-100``: the Jacobian of ``f(x) = tanh(W x + b) * x + x**2`` for x of 100 (``W``
  100 x 100 and ``b`` fixed, in the closure).  jitgrad's and autograd's ``jacobian``,
  ``jax.jit(jax.jacrev)`` and ``jax.jit(jax.jacfwd)``, ``torch.func.jacrev`` and ``jacfwd``.  By
  hand: ``J = diag(t + 2 x) + ((1 - t^2) x)[:, None] * W`` with ``t = tanh(W x + b)``.
* ``hessian-50``: the Hessian of ``f(x) = sum(tanh(A x)^2) + sum(x^4)`` for x of 50 (``A``
  50 x 50 fixed).  jitgrad's and autograd's ``hessian``, ``jax.jit(jax.hessian)``,
  ``torch.func.hessian``.  By hand: ``H = A^T diag(2 (1 - t^2)(1 - 3 t^2)) A + diag(12 x^2)``
  with ``t = tanh(A x)``.
* ``custom-primitive``: ``value_and_grad`` of ``sum(softplus(x) * w)`` for x of 1,000 and of
  100,000, where ``softplus(x) = log1p(exp(x))`` is a primitive of ``jitgrad.extend`` whose body is
  plain NumPy and whose VJP, given by ``defvjp``, is ``g * expit(x)`` written with
  ``jitgrad.numpy``.  The kernel calls the body natively (Numba compiles it); ``jitgrad-callback``
  is the same primitive made with ``native=False``, so the kernel calls back into Python.
  Against the same function written inline with ``jitgrad.numpy`` (the differences are the
  primitive's cost per call, native and as a callback), against autograd's own
  ``primitive``/``defvjp`` version (and autograd inline), and against the value and gradient
  ``w * expit(x)`` by hand in NumPy and in Numba.

Every row is checked before it is timed: its result against the hand-written NumPy one (the
reference, ``max|a - b| / max|b|`` per leaf as in ``run.py``, rtol 1e-7).  The hand-written
results are themselves checked against central finite differences of the hand-written
function (and, for the second derivatives, of its hand-written gradient, which is checked
against central differences of the function).  Timing is ``run.py``'s ``time_per_call``; the
table shows the **median** over repeats of the mean time of a loop of back-to-back calls.
jitgrad's kernel cache is a new, empty temporary directory (``JITGRAD_CACHE_DIR``, set before
jitgrad is imported and deleted at the end), so its first calls trace and compile.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy

from . import problems
from .gmm import markdown_table
from .handwritten import FAST, logreg_numpy
from .run import (LoadMonitor, Missing, _import, reexec_single_threaded,  # shared helpers
                  _jitgrad_source_stamp, _summarise, environment, fmt_s, fmt_us,
                  run_conditions, time_per_call)

RTOL = 1e-7  # agreement required with the hand-written NumPy result (run.py's)
FD_RTOL = 1e-5  # agreement required between the hand-written results and finite differences
SEED = 20240601
REFERENCE = "hand-numpy"

# ------------------------------------------------------------------------------------------------
# Rows and workloads
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str  # the contender's name in the table and for --contenders
    what: str  # what one timed call computes
    build: Callable  # build(data) -> (call, to_numpy)


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    sizes: Callable  # sizes(check) -> [(label, data)]
    rows: list
    fd_check: Callable  # fd_check(data, {hand row: result}) -> {what: max rel err}
    note: Callable | None = None  # note(cells) -> a line under the table, or None


def _identity(out):
    return out


def _setup_jax():
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, _import("jax.numpy")


def _jax_call(jax, fun, *args):
    # Arrays are placed on the device beforehand (as run.py does); JAX dispatches
    # asynchronously, so the call blocks on its result.
    return lambda: jax.block_until_ready(fun(*args))


def _jax_to_numpy(out):
    return numpy.asarray(out)


def _torch_call(torch, fun, *arrays):
    # NumPy in, NumPy out, like the other rows: from_numpy and .numpy() share memory.
    def call():
        return fun(*(torch.from_numpy(a) for a in arrays)).numpy()

    return call


# ------------------------------------------------------------------------------------------------
# hvp-logreg
# ------------------------------------------------------------------------------------------------


def _hvp_sizes(check):
    if check:
        data = problems._logreg_data(n_samples=60, n_features=5)()
    else:
        data = problems.BY_NAME["logreg"].make_data()
    rng = numpy.random.default_rng(SEED + 1)
    data["v"] = rng.standard_normal(data["arg"].shape[0])
    n, d = data["inputs"].shape
    return [(f"inputs {n:,} x {d}", data)]


def _hvp_logreg(np, data):
    return problems.logistic_regression(np, data)


def hvp_numpy(data):
    X, y = data["inputs"], data["targets"]
    if not numpy.all((y == 0.0) | (y == 1.0)):
        raise ValueError("H = X^T diag(s(1-s)) X holds for 0/1 targets only")

    def hvp(w, v):
        t = numpy.tanh(0.5 * (X @ w))  # s = (1 + t) / 2, so s (1 - s) = (1 - t^2) / 4
        return X.T @ (0.25 * (1.0 - t * t) * (X @ v))

    return hvp


@numba.njit(**FAST)
def _hvp_nb(w, v, X):
    n, d = X.shape
    out = numpy.zeros(d)
    for i in range(n):
        z = 0.0
        u = 0.0
        for j in range(d):
            z += X[i, j] * w[j]
            u += X[i, j] * v[j]
        t = math.tanh(0.5 * z)
        c = 0.25 * (1.0 - t * t) * u
        for j in range(d):
            out[j] += c * X[i, j]
    return out


def _hvp_build_hand_numpy(data):
    hvp, w, v = hvp_numpy(data), data["arg"], data["v"]
    return (lambda: hvp(w, v)), _identity


def _hvp_build_hand_numba(data):
    hvp_numpy(data)  # the 0/1 check
    X, w, v = data["inputs"], data["arg"], data["v"]
    return (lambda: _hvp_nb(w, v, X)), _identity


def _hvp_build_jitgrad(data):
    jitgrad, jnp = _import("jitgrad"), _import("jitgrad.numpy")
    hvp, w, v = jitgrad.hessian_vector_product(_hvp_logreg(jnp, data)), data["arg"], data["v"]
    return (lambda: hvp(w, v)), _identity


def _hvp_build_jitgrad_fwd(data):
    jitgrad, jnp = _import("jitgrad"), _import("jitgrad.numpy")
    jvp_of_grad = jitgrad.make_jvp(jitgrad.grad(_hvp_logreg(jnp, data)))
    w, v = data["arg"], data["v"]
    return (lambda: jvp_of_grad(w)(v)), (lambda out: out[1])  # (gradient, H v)


def _hvp_build_autograd(data):
    autograd, anp = _import("autograd"), _import("autograd.numpy")
    hvp, w, v = autograd.hessian_vector_product(_hvp_logreg(anp, data)), data["arg"], data["v"]
    return (lambda: hvp(w, v)), _identity


def _hvp_build_jax(data):
    jax, jnp = _setup_jax()
    jdata = {k: jnp.asarray(a) for k, a in data.items()}
    f = _hvp_logreg(jnp, jdata)
    hvp = jax.jit(lambda w, v: jax.jvp(jax.grad(f), (w,), (v,))[1])
    return _jax_call(jax, hvp, jdata["arg"], jdata["v"]), _jax_to_numpy


def _hvp_build_torch(data):
    torch = _import("torch")
    f = problems.logistic_regression_torch(torch, data)
    func = torch.func
    return (
        _torch_call(torch, lambda w, v: func.jvp(func.grad(f), (w,), (v,))[1], data["arg"],
                    data["v"]),
        _identity,
    )


def _hvp_fd_check(data, outs, h=1e-5, n_coords=10):
    """H v against central differences of the hand-written gradient along v; that gradient
    against central differences of the loss along some coordinates."""
    vg = logreg_numpy(data)
    w, v = data["arg"], data["v"]
    d = w.shape[0]
    coords = numpy.random.default_rng(SEED + 2).permutation(d)[: min(d, n_coords)]
    fd_grad = numpy.array([_central(lambda x: vg(x)[0], w, _unit(d, j), h) for j in coords])
    errs = {"gradient (vs the loss)": _leaf_error(vg(w)[1][coords], fd_grad)}
    fd_hv = _central(lambda x: vg(x)[1], w, v, h)
    errs.update({name: _leaf_error(out, fd_hv) for name, out in outs.items()})
    return errs


# ------------------------------------------------------------------------------------------------
# jacobian-100
# ------------------------------------------------------------------------------------------------


def _jac_sizes(check):
    n = 5 if check else 100
    rng = numpy.random.default_rng(SEED + 3)
    data = {
        "arg": rng.standard_normal(n),
        "W": rng.standard_normal((n, n)) / math.sqrt(n),
        "b": 0.1 * rng.standard_normal(n),
    }
    return [(f"x of {n}", data)]


def _jac_f(np, data):
    W, b = data["W"], data["b"]

    def f(x):
        return np.tanh(W @ x + b) * x + x**2

    return f


def jac_numpy(data):
    W, b = data["W"], data["b"]

    def jac(x):
        t = numpy.tanh(W @ x + b)
        J = ((1.0 - t * t) * x)[:, None] * W
        J[numpy.diag_indices_from(J)] += t + 2.0 * x
        return J

    return jac


@numba.njit(**FAST)
def _jac_nb(x, W, b):
    n = x.shape[0]
    J = numpy.empty((n, n))
    for i in range(n):
        a = b[i]
        for j in range(n):
            a += W[i, j] * x[j]
        t = math.tanh(a)
        s = (1.0 - t * t) * x[i]
        for j in range(n):
            J[i, j] = s * W[i, j]
        J[i, i] += t + 2.0 * x[i]
    return J


def _jac_build_hand_numpy(data):
    jac, x = jac_numpy(data), data["arg"]
    return (lambda: jac(x)), _identity


def _jac_build_hand_numba(data):
    x, W, b = data["arg"], data["W"], data["b"]
    return (lambda: _jac_nb(x, W, b)), _identity


def _jac_build_jitgrad(data):
    jitgrad, jnp = _import("jitgrad"), _import("jitgrad.numpy")
    jac, x = jitgrad.jacobian(_jac_f(jnp, data)), data["arg"]
    return (lambda: jac(x)), _identity


def _jac_build_autograd(data):
    autograd, anp = _import("autograd"), _import("autograd.numpy")
    jac, x = autograd.jacobian(_jac_f(anp, data)), data["arg"]
    return (lambda: jac(x)), _identity


def _jac_build_jax(transform):
    def build(data):
        jax, jnp = _setup_jax()
        jdata = {k: jnp.asarray(a) for k, a in data.items()}
        jac = jax.jit(getattr(jax, transform)(_jac_f(jnp, jdata)))
        return _jax_call(jax, jac, jdata["arg"]), _jax_to_numpy

    return build


def _jac_build_torch(transform):
    def build(data):
        torch = _import("torch")
        W, b = torch.from_numpy(data["W"]), torch.from_numpy(data["b"])
        jac = getattr(torch.func, transform)(lambda x: torch.tanh(W @ x + b) * x + x**2)
        return _torch_call(torch, jac, data["arg"]), _identity

    return build


def _jac_fd_check(data, outs, h=1e-5):
    """Every column of the Jacobian against central differences of f along that coordinate."""
    f = _jac_f(numpy, data)
    x = data["arg"]
    n = x.shape[0]
    fd = numpy.stack([_central(f, x, _unit(n, j), h) for j in range(n)], axis=1)
    return {name: _leaf_error(out, fd) for name, out in outs.items()}


# ------------------------------------------------------------------------------------------------
# hessian-50
# ------------------------------------------------------------------------------------------------


def _hess_sizes(check):
    n = 5 if check else 50
    rng = numpy.random.default_rng(SEED + 4)
    data = {"arg": 0.5 * rng.standard_normal(n), "A": rng.standard_normal((n, n)) / math.sqrt(n)}
    return [(f"x of {n}", data)]


def _hess_f(np, data):
    A = data["A"]

    def f(x):
        return np.sum(np.tanh(A @ x) ** 2) + np.sum(x**4)

    return f


def hess_grad_numpy(data):
    """The hand-written gradient, A^T (2 t (1 - t^2)) + 4 x^3: the finite differences of the
    Hessian are taken of it."""
    A = data["A"]

    def g(x):
        t = numpy.tanh(A @ x)
        return A.T @ (2.0 * t * (1.0 - t * t)) + 4.0 * x**3

    return g


def hess_numpy(data):
    A = data["A"]

    def hess(x):
        t = numpy.tanh(A @ x)
        t2 = t * t
        H = A.T @ ((2.0 * (1.0 - t2) * (1.0 - 3.0 * t2))[:, None] * A)
        H[numpy.diag_indices_from(H)] += 12.0 * x * x
        return H

    return hess


@numba.njit(**FAST)
def _hess_nb(x, A):
    m, n = A.shape
    B = numpy.empty((m, n))
    for k in range(m):
        u = 0.0
        for j in range(n):
            u += A[k, j] * x[j]
        t = math.tanh(u)
        t2 = t * t
        c = 2.0 * (1.0 - t2) * (1.0 - 3.0 * t2)
        for j in range(n):
            B[k, j] = c * A[k, j]
    H = numpy.dot(A.T, B)
    for i in range(n):
        H[i, i] += 12.0 * x[i] * x[i]
    return H


def _hess_build_hand_numpy(data):
    hess, x = hess_numpy(data), data["arg"]
    return (lambda: hess(x)), _identity


def _hess_build_hand_numba(data):
    x, A = data["arg"], data["A"]
    return (lambda: _hess_nb(x, A)), _identity


def _hess_build_jitgrad(data):
    jitgrad, jnp = _import("jitgrad"), _import("jitgrad.numpy")
    hess, x = jitgrad.hessian(_hess_f(jnp, data)), data["arg"]
    return (lambda: hess(x)), _identity


def _hess_build_autograd(data):
    autograd, anp = _import("autograd"), _import("autograd.numpy")
    hess, x = autograd.hessian(_hess_f(anp, data)), data["arg"]
    return (lambda: hess(x)), _identity


def _hess_build_jax(data):
    jax, jnp = _setup_jax()
    jdata = {k: jnp.asarray(a) for k, a in data.items()}
    hess = jax.jit(jax.hessian(_hess_f(jnp, jdata)))
    return _jax_call(jax, hess, jdata["arg"]), _jax_to_numpy


def _hess_build_torch(data):
    torch = _import("torch")
    A = torch.from_numpy(data["A"])
    hess = torch.func.hessian(lambda x: torch.sum(torch.tanh(A @ x) ** 2) + torch.sum(x**4))
    return _torch_call(torch, hess, data["arg"]), _identity


def _hess_fd_check(data, outs, h=1e-5):
    """The gradient against central differences of f, every coordinate; the Hessian's columns
    against central differences of that gradient."""
    f, g = _hess_f(numpy, data), hess_grad_numpy(data)
    x = data["arg"]
    n = x.shape[0]
    fd_g = numpy.array([_central(f, x, _unit(n, j), h) for j in range(n)])
    errs = {"gradient (vs f)": _leaf_error(g(x), fd_g)}
    fd_h = numpy.stack([_central(g, x, _unit(n, j), h) for j in range(n)], axis=1)
    errs.update({name: _leaf_error(out, fd_h) for name, out in outs.items()})
    return errs


# ------------------------------------------------------------------------------------------------
# custom-primitive
# ------------------------------------------------------------------------------------------------


def _prim_sizes(check):
    out = []
    for n in (7, 13) if check else (1000, 100_000):
        rng = numpy.random.default_rng(SEED + n)
        out.append((f"x of {n:,}", {"arg": 3.0 * rng.standard_normal(n),
                                     "w": rng.uniform(-1.0, 1.0, n)}))
    return out


@functools.lru_cache(maxsize=None)
def jitgrad_softplus(native=True):
    """The primitive, made once (jitgrad is imported only after JITGRAD_CACHE_DIR is set)."""
    extend, jnp = _import("jitgrad.extend"), _import("jitgrad.numpy")

    @extend.primitive(native=native)
    def softplus(x):
        return numpy.log1p(numpy.exp(x))  # plain NumPy: native, or a callback from the kernel

    extend.defvjp(softplus, lambda ans, x: lambda g: g * (1.0 / (1.0 + jnp.exp(-x))))
    return softplus


@functools.lru_cache(maxsize=None)
def autograd_softplus():
    extend, anp = _import("autograd.extend"), _import("autograd.numpy")

    @extend.primitive
    def softplus(x):
        return numpy.log1p(numpy.exp(x))

    extend.defvjp(softplus, lambda ans, x: lambda g: g * (1.0 / (1.0 + anp.exp(-x))))
    return softplus


def _softplus_loss(np, softplus, data):
    w = data["w"]

    def f(x):
        return np.sum(softplus(x) * w)

    return f


def prim_numpy(data):
    w = data["w"]

    def vg(x):
        return float(numpy.sum(numpy.log1p(numpy.exp(x)) * w)), w / (1.0 + numpy.exp(-x))

    return vg


@numba.njit(**FAST)
def _prim_nb(x, w):
    n = x.shape[0]
    g = numpy.empty(n)
    value = 0.0
    for i in range(n):
        e = math.exp(x[i])
        value += math.log1p(e) * w[i]
        g[i] = w[i] * e / (1.0 + e)  # expit(x) = e^x / (1 + e^x)
    return value, g


def _prim_build_hand_numpy(data):
    vg, x = prim_numpy(data), data["arg"]
    return (lambda: vg(x)), _identity


def _prim_build_hand_numba(data):
    x, w = data["arg"], data["w"]
    return (lambda: _prim_nb(x, w)), _identity


def _prim_build_jitgrad(inline, native=True):
    def build(data):
        jitgrad, jnp = _import("jitgrad"), _import("jitgrad.numpy")
        softplus = (lambda x: jnp.log1p(jnp.exp(x))) if inline else jitgrad_softplus(native)
        vg, x = jitgrad.value_and_grad(_softplus_loss(jnp, softplus, data)), data["arg"]
        return (lambda: vg(x)), _identity

    return build


def _prim_build_autograd(inline):
    def build(data):
        autograd, anp = _import("autograd"), _import("autograd.numpy")
        softplus = (lambda x: anp.log1p(anp.exp(x))) if inline else autograd_softplus()
        vg, x = autograd.value_and_grad(_softplus_loss(anp, softplus, data)), data["arg"]
        return (lambda: vg(x)), _identity

    return build


def _prim_fd_check(data, outs, h=1e-4, n_coords=20):
    """The value against a compensated sum of the terms; the gradient against central
    differences of the function along some coordinates (all of them at the --check sizes)."""
    x, w = data["arg"], data["w"]
    n = x.shape[0]
    f = _softplus_loss(numpy, lambda x: numpy.log1p(numpy.exp(x)), data)
    value = math.fsum(numpy.log1p(numpy.exp(x)) * w)
    coords = numpy.random.default_rng(SEED + 5).permutation(n)[: min(n, n_coords)]
    fd = numpy.array([_central(f, x, _unit(n, j), h) for j in coords])
    return {
        name: max(abs(v - value) / abs(value), _leaf_error(g[coords], fd))
        for name, (v, g) in outs.items()
    }


def _prim_note(cells):
    """jitgrad's primitive rows (native, callback) less its inline row: the primitive's cost
    per call.  For the callback, less what its NumPy body (vectorised exp and log1p) saves over
    the compiled loop's scalar libm calls, which hand-numba less hand-numpy shows."""
    b = cells.get("jitgrad-inline")
    if b is None or b.status != "ok":
        return None
    parts = []
    for key, what in (("jitgrad", "native"), ("jitgrad-callback", "callback")):
        a = cells.get(key)
        if a is not None and a.status == "ok":
            parts.append(f"{key} - jitgrad-inline ({what}): "
                         f"{(a.median_s - b.median_s) * 1e6:+,.1f} µs per call")
    if not parts:
        return None
    line = "; ".join(parts)
    hn, hp = cells.get("hand-numba"), cells.get("hand-numpy")
    if hn is not None and hn.status == "ok" and hp is not None and hp.median_s:
        line += (" (for scale, what NumPy's vectorised exp/log1p save over scalar libm calls, "
                 f"hand-numba - hand-numpy: {(hn.median_s - hp.median_s) * 1e6:+,.1f} µs)")
    return line


# ------------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------------


WORKLOADS = [
    Workload(
        "hvp-logreg",
        "Hessian-vector product H v of autograd's logistic-regression loss (benchmarks/problems.py"
        " `logreg`), 100 weights, v random",
        _hvp_sizes,
        [
            Row("hand-numpy", "X^T (s(1-s) (X v)), s = sigmoid(X w): 3 BLAS gemv",
                _hvp_build_hand_numpy),
            Row("hand-numba", "the same, one fused pass over X's rows", _hvp_build_hand_numba),
            Row("jitgrad", "hessian_vector_product(loss)(w, v)", _hvp_build_jitgrad),
            Row("jitgrad-fwd-rev", "make_jvp(grad(loss))(w)(v) (also the gradient)",
                _hvp_build_jitgrad_fwd),
            Row("autograd", "hessian_vector_product(loss)(w, v)", _hvp_build_autograd),
            Row("jax", "jit(jvp(grad(loss), (w,), (v,))[1])", _hvp_build_jax),
            Row("torch", "func.jvp(func.grad(loss), (w,), (v,))[1]", _hvp_build_torch),
        ],
        _hvp_fd_check,
    ),
    Workload(
        "jacobian-100",
        "Jacobian of f(x) = tanh(W x + b) * x + x**2 (W, b fixed), n -> n",
        _jac_sizes,
        [
            Row("hand-numpy", "diag(t + 2x) + ((1 - t^2) x)[:, None] * W", _jac_build_hand_numpy),
            Row("hand-numba", "the same, one loop over the rows", _jac_build_hand_numba),
            Row("jitgrad", "jacobian(f)(x)", _jac_build_jitgrad),
            Row("autograd", "jacobian(f)(x)", _jac_build_autograd),
            Row("jax", "jit(jacrev(f))(x)", _jac_build_jax("jacrev")),
            Row("jax-jacfwd", "jit(jacfwd(f))(x)", _jac_build_jax("jacfwd")),
            Row("torch", "func.jacrev(f)(x)", _jac_build_torch("jacrev")),
            Row("torch-jacfwd", "func.jacfwd(f)(x)", _jac_build_torch("jacfwd")),
        ],
        _jac_fd_check,
    ),
    Workload(
        "hessian-50",
        "Hessian of f(x) = sum(tanh(A x)**2) + sum(x**4) (A n x n fixed)",
        _hess_sizes,
        [
            Row("hand-numpy", "A^T diag(2(1-t^2)(1-3t^2)) A + diag(12 x^2)",
                _hess_build_hand_numpy),
            Row("hand-numba", "the same, scaled rows in a loop, A^T B by BLAS",
                _hess_build_hand_numba),
            Row("jitgrad", "hessian(f)(x)", _hess_build_jitgrad),
            Row("autograd", "hessian(f)(x)", _hess_build_autograd),
            Row("jax", "jit(hessian(f))(x)", _hess_build_jax),
            Row("torch", "func.hessian(f)(x)", _hess_build_torch),
        ],
        _hess_fd_check,
    ),
    Workload(
        "custom-primitive",
        "value_and_grad of sum(softplus(x) * w), softplus = log1p(exp(x)) a custom primitive "
        "(NumPy body, defvjp g * expit(x))",
        _prim_sizes,
        [
            Row("hand-numpy", "sum(log1p(exp(x)) w), w / (1 + exp(-x))", _prim_build_hand_numpy),
            Row("hand-numba", "the same, one fused loop", _prim_build_hand_numba),
            Row("jitgrad", "value_and_grad, softplus a jitgrad.extend primitive (native)",
                _prim_build_jitgrad(inline=False)),
            Row("jitgrad-callback", "the same primitive made with native=False (a callback)",
                _prim_build_jitgrad(inline=False, native=False)),
            Row("jitgrad-inline", "value_and_grad, softplus inline: np.log1p(np.exp(x))",
                _prim_build_jitgrad(inline=True)),
            Row("autograd", "value_and_grad, softplus an autograd.extend primitive",
                _prim_build_autograd(inline=False)),
            Row("autograd-inline", "value_and_grad, softplus inline",
                _prim_build_autograd(inline=True)),
        ],
        _prim_fd_check,
        _prim_note,
    ),
]
BY_NAME = {w.name: w for w in WORKLOADS}
ALL_KEYS = list(dict.fromkeys(r.key for w in WORKLOADS for r in w.rows))


# ------------------------------------------------------------------------------------------------
# Checking and timing
# ------------------------------------------------------------------------------------------------


def _unit(n, j):
    e = numpy.zeros(n)
    e[j] = 1.0
    return e


def _central(f, x, direction, h):
    return (numpy.asarray(f(x + h * direction)) - numpy.asarray(f(x - h * direction))) / (2 * h)


def _leaf_error(a, b):
    """run.py's measure for one leaf: |a - b| / |b| for numbers, max|a - b| / max|b| for arrays
    (entries near zero by cancellation do not fail on round-off); NaN counts as inf."""
    b = numpy.asarray(b)
    a = numpy.asarray(a)
    if a.shape != b.shape:
        raise ValueError(f"shape {list(a.shape)}, expected {list(b.shape)}")
    if not numpy.issubdtype(a.dtype, numpy.floating):
        raise ValueError(f"dtype {a.dtype}, expected {b.dtype}")
    scale = max(float(numpy.max(numpy.abs(b))) if b.size else 0.0, 1e-300)
    err = float(numpy.max(numpy.abs(a - b))) / scale if a.size else 0.0
    return math.inf if math.isnan(err) else err


def max_rel_error(out, ref):
    """The largest leaf error of a result (an array, or a (value, gradient) pair)."""
    if isinstance(ref, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(ref):
            raise ValueError(f"expected a tuple of {len(ref)}, got {type(out).__name__}")
        return max(_leaf_error(a, b) for a, b in zip(out, ref))
    return _leaf_error(out, ref)


@dataclass
class Cell:
    status: str = "missing"  # missing | error | ok | mismatch
    median_s: float | None = None
    min_s: float | None = None
    first_call_s: float | None = None
    max_rel_err: float | None = None
    note: str = ""
    result: object = field(default=None, repr=False)  # kept for the hand rows' FD check


def run_row(row, data, ref, args) -> Cell:
    cell = Cell()
    try:
        call, to_numpy = row.build(data)
    except Missing as e:
        cell.note = str(e)
        return cell
    except Exception as e:  # noqa: BLE001  (any failure is reported in the cell)
        cell.status, cell.note = "error", _summarise(e)[0]
        return cell
    try:
        t0 = time.perf_counter()
        out = call()
        cell.first_call_s = time.perf_counter() - t0
        cell.result = to_numpy(out)
        if ref is None:  # the reference row itself
            cell.status, cell.max_rel_err = "ok", 0.0
        else:
            try:
                cell.max_rel_err = max_rel_error(cell.result, ref)
                cell.status = "ok" if cell.max_rel_err <= RTOL else "mismatch"
                if cell.status == "mismatch":
                    cell.note = f"max relative error {cell.max_rel_err:.2e} > {RTOL:g}"
            except ValueError as e:
                cell.status, cell.note = "mismatch", str(e)
        if not args.check:
            # A wrong answer is still timed, and flagged: hiding it would hide the bug.
            cell.median_s, cell.min_s, _ = time_per_call(call, args.target, args.repeats)
    except Exception as e:  # noqa: BLE001
        cell.status, cell.note = "error", _summarise(e)[0]
    return cell


def _selected(key, wanted):
    return key == REFERENCE or any(key == w or key.startswith(w + "-") for w in wanted)


def run_workload(workload, args, started):
    """[(size label, cells, fd errors)] for every size of the workload."""
    out = []
    for label, data in workload.sizes(args.check):
        print(
            f"[{time.perf_counter() - started:6.1f} s] {workload.name} ({label}):",
            end="",
            flush=True,
        )
        cells, ref = {}, None
        for row in workload.rows:  # the reference first, then the hand-written Numba row
            if not _selected(row.key, args.contenders):
                continue
            print(f" {row.key}", end="", flush=True)
            cells[row.key] = cell = run_row(row, data, ref, args)
            if row.key == REFERENCE:
                if cell.status != "ok":
                    print(f"\nthe reference failed: {cell.note}")
                    raise SystemExit(2)
                ref = cell.result
            gc.collect()
        print(" finite-differences", flush=True)
        hand = {k: c.result for k, c in cells.items() if k.startswith("hand-") and c.status == "ok"}
        try:
            fd = workload.fd_check(data, hand)
        except Exception as e:  # noqa: BLE001
            fd = {"finite differences": _summarise(e)[0]}
        for cell in cells.values():
            cell.result = None
        out.append((label, cells, fd))
        del data, ref
        gc.collect()
    return out


# ------------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------------


def _fmt_err(e):
    return "-" if e is None else f"{e:.1e}"


def _fd_line(fd):
    parts = [f"{k} {v:.1e}" if isinstance(v, float) else f"{k}: {v}" for k, v in fd.items()]
    bad = [k for k, v in fd.items() if not isinstance(v, float) or not v <= FD_RTOL]
    return (
        "hand-written vs central differences, max rel err: "
        + ", ".join(parts)
        + (f"  <-- ABOVE {FD_RTOL:g}: {', '.join(bad)}" if bad else f" (all <= {FD_RTOL:g})")
    ), bad


def timing_table(workload, cells):
    ref = cells[REFERENCE]
    header = ["contender", "µs/call", "vs hand-numpy", "first call", "max rel err",
              "computes (note)"]
    rows = []
    for row in workload.rows:
        c = cells.get(row.key)
        if c is None:
            continue
        if c.status == "missing":
            time_cell = "-"
        elif c.median_s is None:
            time_cell = "ERROR"
        else:
            time_cell = fmt_us(c.median_s * 1e6) + (" !" if c.status == "mismatch" else "")
        ratio = "-"
        if c.status == "ok" and c.median_s is not None and ref.median_s:
            r = c.median_s / ref.median_s
            ratio = f"{r:.2f}x" if r < 100 else f"{r:,.0f}x"
        note = c.note if c.status != "missing" else "not installed"
        note = note if len(note) <= 70 else note[:67] + "..."
        rows.append([row.key, time_cell, ratio, fmt_s(c.first_call_s), _fmt_err(c.max_rel_err),
                     row.what + (f" ({note})" if note else "")])
    return markdown_table(header, rows)


def check_table(workload, cells):
    header = ["contender", "status", "max rel err", "computes (note)"]
    rows = []
    for row in workload.rows:
        c = cells.get(row.key)
        if c is not None:
            note = c.note if c.status != "missing" else "not installed"
            note = note if len(note) <= 70 else note[:67] + "..."
            rows.append([row.key, c.status, _fmt_err(c.max_rel_err),
                         row.what + (f" ({note})" if note else "")])
    return markdown_table(header, rows)


def _full_notes(results):
    notes = []
    for name, sizes in results.items():
        for label, cells, _ in sizes:
            for key, c in cells.items():
                if c.status in ("error", "mismatch") and len(c.note) > 70:
                    notes.append(f"  {c.status.upper():8} {key} on {name} ({label}): {c.note}")
    return notes


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.derivatives",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="3 repeats of >= 0.05 s (a smoke run)")
    ap.add_argument("--only", metavar="NAME[,NAME]", help="workloads, from: " + ", ".join(BY_NAME))
    ap.add_argument(
        "--contenders",
        metavar="NAME[,NAME]",
        help="rows to run (a name also selects its variants: 'jax' is jax and jax-jacfwd, 'hand' "
        "both hand-written rows; hand-numpy, the reference, always runs), from: "
        + ", ".join(ALL_KEYS),
    )
    ap.add_argument(
        "--single-thread",
        action="store_true",
        help="BLAS, Numba, XLA and torch on one thread each (steadier on a shared machine)",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="tiny sizes, no timing: check every row against hand-numpy and the hand-written "
        "rows against finite differences; exit 1 on any disagreement or error",
    )
    args = ap.parse_args(argv)
    args.target, args.repeats = (0.05, 3) if args.quick else (0.2, 5)
    names = [n.strip() for n in (args.only or ",".join(BY_NAME)).split(",") if n.strip()]
    bad = [n for n in names if n not in BY_NAME]
    if bad:
        ap.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(BY_NAME)}")
    args.workloads = [w for w in WORKLOADS if w.name in names]
    wanted = [c.strip() for c in (args.contenders or ",".join(ALL_KEYS)).split(",") if c.strip()]
    bad = [c for c in wanted if not any(_selected(k, [c]) and k != REFERENCE for k in ALL_KEYS)
           and c != REFERENCE]
    if bad:
        ap.error(f"unknown contender(s) {', '.join(bad)}; choose from {', '.join(ALL_KEYS)}")
    args.contenders = wanted
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.single_thread:
        reexec_single_threaded("benchmarks.derivatives", argv)
    # An empty kernel cache of our own, set before jitgrad is first imported (by a row's
    # builder): jitgrad's first calls then trace and compile, whatever ~/.cache/jitgrad holds.
    if "jitgrad" in sys.modules:
        raise RuntimeError("jitgrad was imported before its cache directory was set")
    cache = tempfile.mkdtemp(prefix="jitgrad-derivatives-cache-")
    os.environ["JITGRAD_CACHE_DIR"] = cache
    try:
        return _run(args, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(args, cache):
    started = time.perf_counter()
    load = LoadMonitor()
    stamp = _jitgrad_source_stamp()
    # Numba's one-time start-up (its first compile in a process) is paid here, so that it falls
    # on no row's first call.
    t0 = time.perf_counter()
    numba.njit(lambda v: v + 1.0)(1.0)
    numba_startup = time.perf_counter() - t0
    results = {w.name: run_workload(w, args, started) for w in args.workloads}

    failures = []
    print()
    if args.check:
        print("## jitgrad's derivative operators: correctness check (--check, tiny sizes)")
    else:
        print("## jitgrad's derivative operators beyond the gradient")
    for workload in args.workloads:
        for label, cells, fd in results[workload.name]:
            print()
            print(f"### {workload.name}, {label}: {workload.description}")
            print()
            print(check_table(workload, cells) if args.check else timing_table(workload, cells))
            print()
            line, bad_fd = _fd_line(fd)
            print(line)
            if workload.note and not args.check:
                extra = workload.note(cells)
                if extra:
                    print(extra)
            failures += [f"{workload.name} ({label}): {k} vs finite differences" for k in bad_fd]
            failures += [
                f"{workload.name} ({label}): {k} {c.status}: {c.note}"
                for k, c in cells.items()
                if c.status in ("error", "mismatch")
            ]
    print()
    if args.check:
        print(
            f"Every row against hand-numpy (rtol {RTOL:g}, max|a - b| / max|b| per leaf); '-' "
            "rows' libraries are not installed."
        )
    else:
        print(
            f"µs per call: median of {args.repeats} repeats, each a loop of >= {args.target:g} s "
            "(run.py's time_per_call).  vs hand-numpy: that median over hand-numpy's.  first "
            "call: the\ncall before timing, compilation included (jitgrad: trace + codegen + "
            "Numba compile into an empty cache, unless an earlier row or size left a kernel it\n"
            "reuses; jax: jit trace + XLA compile; hand-numba: Numba compile).  '!': disagrees "
            f"with hand-numpy beyond rtol {RTOL:g}.  jax: arrays placed on the device\nbeforehand, "
            "result blocked on; torch and the others: NumPy in, NumPy out.  Numba start-up "
            f"(paid before the first row): {fmt_s(numba_startup)}.\njitgrad kernel cache: {cache}; "
            f"JITGRAD_EXECUTION={os.environ.get('JITGRAD_EXECUTION', '(unset: auto)')} "
            "(benchmarks/__init__.py sets compile unless the environment says otherwise)"
        )
    notes = _full_notes(results)
    if notes:
        print()
        print("Errors and mismatches")
        print("\n".join(notes))
    print()
    print("Machine and versions")
    env = run_conditions(environment(), load, stamp)
    for k, v in env.items():
        print(f"  {k:<11} {v}")
    print(f"\nTotal run time {time.perf_counter() - started:.0f} s")
    if args.check:
        if failures:
            print(f"\nCHECK FAILED ({len(failures)}):")
            print("\n".join("  " + f for f in failures))
            return 1
        print("\nCHECK PASSED: every row agrees with hand-numpy, and the hand-written rows with "
              "finite differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
