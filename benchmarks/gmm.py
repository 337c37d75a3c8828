"""ADBench's Gaussian mixture model objective: value and gradient, every contender in one process.

Run from the repository root::

    python -m benchmarks.gmm                  # d=10 K=5 n=1000, then d=64 K=50 n=10000
    python -m benchmarks.gmm --only main      # the small problem only (about a minute)
    python -m benchmarks.gmm --quick          # fewer, shorter repeats (a smoke run)

The objective is the one of ADBench (Srajer, Fitzgibbon et al. 2018, "A benchmark of selected
algorithmic differentiation tools on some problems in computer vision and machine learning",
section 4.1), as its Python modules define it: the negative log posterior of a GMM whose K
components are parametrised by ``alphas`` (K,), the log mixture weights up to normalisation,
``means`` (K, d) and ``icf`` (K, d + d(d-1)/2), the inverse covariance factors.  For component k,
``Q_k = diag(exp(icf[k, :d])) + L_k`` where the strictly lower triangle of ``L_k`` is filled
column by column from ``icf[k, d:]``, and

    f = sum_i logsumexp_k(alphas_k + sum(icf[k, :d]) - 0.5 ||Q_k (x_i - mu_k)||^2)
        - n logsumexp(alphas)
        + 0.5 gamma^2 sum_k (||exp(icf[k, :d])||^2 + ||icf[k, d:]||^2) - m sum_k sum(icf[k, :d])
        - n d log(2 pi) / 2 - K (p d (log gamma - log(2) / 2) - multigammaln(p / 2, d))

with ``p = d + m + 1`` and ADBench's Wishart hyper-parameters ``gamma = 1``, ``m = 0``.  The
constants do not change the gradient; they are there so that values can be compared with
ADBench's.  The gradient is with respect to ``(alphas, means, icf)``, passed as one tuple.  The
data follow ADBench's generator (``data/gmm/gmm-data-gen.py``): seed 31337, ``alphas``, ``icf``
and ``x`` standard normal, ``means`` uniform in [0, 1), drawn in the same order, so the arrays
are those of ADBench's ``gmm_d{d}_K{K}`` files with 1k or 10k points.

Contenders (each checked against the hand-written NumPy value and gradient first):

* ``hand-numba``: value and gradient derived by hand (the derivation is above ``hand_numpy``),
  ``@numba.njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")`` as in
  ``handwritten.py``.  The points go in blocks: one BLAS product gives every ``Q_k x_i`` of a
  block (the ``Q_k`` stacked as one (K d, d) matrix), one fused loop per point subtracts
  ``Q_k mu_k``, takes the log-sum-exp and turns ``z`` into the adjoint ``w = p z``, and a second
  BLAS product accumulates ``sum_i w_i x_i^T``, from which ``df/dQ_k`` follows.  (Loops over the
  triangle, as ADBench's C++ does it, took about 4x longer at the small size, 1.0 against
  0.25 ms a call: the rows are short.);
* ``hand-numpy``: the same derivation in vectorised NumPy (one BLAS product per component and
  pass), the reference;
* ``autograd``, ``jax`` (``jax.jit(jax.value_and_grad)``, float64) and ``jitgrad``
  (``jitgrad.value_and_grad``), all running ``gmm_objective`` below: the vectorised ADBench
  formulation, written once for any NumPy-like module (the triangle gathered with a constant
  index array, ``Q_k (x_i - mu_k)`` with ``einsum``, ``logsumexp`` from the library's
  ``scipy.special``);
* ``jitgrad (no einsum)``: ``gmm_objective_no_einsum``, the same objective written with only
  what jitgrad traced before it had integer-array indexing, ``einsum`` and
  ``scipy.special.logsumexp`` (the triangle built by a product with a constant 0/1 matrix,
  every component's ``Q_k x_i`` in one 2-D matrix product, log-sum-exp shifted by the maximum);
* ``torch``: ``torch_loss``, the ADBench formulation with torch ops, float64, ``backward()``.

A contender that raises shows ``ERROR`` and the first line of its exception, and the run goes on.
After the tables, each construct ``gmm_objective`` needs beyond the no-einsum version (the
gather, ``einsum``, ``jitgrad.scipy.special.logsumexp``) is tried on its own in jitgrad and its
value and gradient checked against NumPy.

The columns are ADBench's: the time of one objective-and-gradient call, of the objective alone
where there is a separate way to evaluate it, and their ratio (ADBench reports 1.9-7.2x for
hand-written gradients, 3.7-15x for Tapenade, 22-107x for autograd).
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.metadata
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numba
import numpy

from .run import (LoadMonitor, Missing, _cpu_model, _identity,  # shared with the main table
                  _import, _loop, reexec_single_threaded, run_conditions)

RTOL = 1e-7  # agreement required with the hand-written NumPy value and gradient

SIZES = {  # name: (d, K, n)
    "main": (10, 5, 1000),
    "large": (64, 50, 10000),
}
WISHART_GAMMA = 1.0
WISHART_M = 0
SEED = 31337

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------
# Data and constants
# ------------------------------------------------------------------------------------------------


def make_data(d, K, n):
    """ADBench's GMM inputs for (d, K, n): the same streams, in the same order, as its generator.

    The generator draws K_max * d uniforms and K_max * (1 + d + d(d-1)/2) + N_max * d normals
    (K_max = 200, N_max = 10,000) from NumPy's legacy generator seeded with 31337, then takes
    ``alphas`` and ``icf`` and ``x`` from the front of the normal stream and ``means`` from the
    uniform one, so a problem's arrays do not depend on the largest sizes it could have had.
    """
    k_max, n_max = 200, 10_000
    if K > k_max or n > n_max:
        raise ValueError(f"ADBench's generator makes K <= {k_max} and n <= {n_max}")
    rs = numpy.random.RandomState(SEED)
    n_icf = d + d * (d - 1) // 2
    uniform = rs.uniform(0.0, 1.0, k_max * d)
    normal = rs.normal(0.0, 1.0, k_max * (1 + n_icf) + n_max * d)
    alphas = normal[:K].copy()
    icf = normal[K : K + K * n_icf].reshape(K, n_icf).copy()
    x = normal[K + K * n_icf : K + K * n_icf + n * d].reshape(n, d).copy()
    means = uniform[: K * d].reshape(K, d).copy()
    return {"arg": (alphas, means, icf), "x": x, "gamma": WISHART_GAMMA, "m": WISHART_M}


def multigammaln(a, p):
    """log of the multivariate gamma function Gamma_p(a) (SciPy's ``special.multigammaln``)."""
    return p * (p - 1) / 4.0 * math.log(math.pi) + sum(
        math.lgamma(a + (1 - j) / 2.0) for j in range(1, p + 1)
    )


def constant_terms(n, d, K, gamma, m):
    """The parts of ADBench's objective that depend on no parameter: the Gaussians' normaliser
    and the Wishart prior's, ``-K (p d (log gamma - log 2 / 2) - log Gamma_d(p / 2))``."""
    p = d + m + 1
    wishart = p * d * (math.log(gamma) - 0.5 * math.log(2.0)) - multigammaln(0.5 * p, d)
    return -n * d * 0.5 * math.log(2.0 * math.pi) - K * wishart


@functools.lru_cache(maxsize=None)
def tril_layout(d):
    """(rows, cols) of ``icf[k, d:]``'s entries in ``L_k``: the strict lower triangle, column by
    column (ADBench's order).  Cached; the arrays must not be modified."""
    upper_r, upper_c = numpy.triu_indices(d, 1)  # (i, j), i < j, by i then j
    rows, cols = upper_c, upper_r  # transposed: column i, rows j > i, by column then row
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


@functools.lru_cache(maxsize=None)
def tril_gather(d):
    """``idx`` (d, d) into a row of ``icf`` and the 0/1 ``mask`` (d, d) such that
    ``icf[k][idx] * mask`` is ``L_k``: the gather of the vectorised formulation."""
    rows, cols = tril_layout(d)
    idx = numpy.zeros((d, d), dtype=numpy.intp)
    idx[rows, cols] = d + numpy.arange(rows.size)
    mask = numpy.zeros((d, d))
    mask[rows, cols] = 1.0
    idx.setflags(write=False)
    mask.setflags(write=False)
    return idx, mask


@functools.lru_cache(maxsize=None)
def tril_selection(d):
    """0/1 matrices ``S_diag`` (d, d*d) and ``S_low`` (d(d-1)/2, d*d) such that
    ``(exp(icf[:, :d]) @ S_diag + icf[:, d:] @ S_low).reshape(K, d, d)`` is every ``Q_k``."""
    rows, cols = tril_layout(d)
    s_diag = numpy.zeros((d, d * d))
    s_diag[numpy.arange(d), numpy.arange(d) * (d + 1)] = 1.0
    s_low = numpy.zeros((rows.size, d * d))
    s_low[numpy.arange(rows.size), rows * d + cols] = 1.0
    s_diag.setflags(write=False)
    s_low.setflags(write=False)
    return s_diag, s_low


# ------------------------------------------------------------------------------------------------
# The objective for NumPy-like modules (autograd.numpy, jax.numpy, jitgrad.numpy)
# ------------------------------------------------------------------------------------------------


def gmm_objective(np, logsumexp, alphas, means, icf, x, wishart_gamma, wishart_m):
    """ADBench's objective in its vectorised form; ``np`` is the NumPy-like module and
    ``logsumexp(a, axis)`` the log-sum-exp of its ``scipy.special`` (or a composition)."""
    n, d = x.shape
    K = alphas.shape[0]
    idx, mask = tril_gather(d)  # constants
    Qdiags = np.exp(icf[:, :d])  # (K, d)
    sum_qs = np.sum(icf[:, :d], axis=1)  # (K,)
    Ls = icf[:, idx] * mask  # (K, d, d): L_k, gathered from the packed columns
    xcentered = x[:, None, :] - means[None, :, :]  # (n, K, d)
    Lxcentered = Qdiags * xcentered + np.einsum("kij,nkj->nki", Ls, xcentered)
    sqsum_Lxcentered = np.sum(Lxcentered**2, axis=2)  # (n, K)
    inner_term = alphas + sum_qs - 0.5 * sqsum_Lxcentered
    slse = np.sum(logsumexp(inner_term, axis=1))
    prior = 0.5 * wishart_gamma * wishart_gamma * (
        np.sum(Qdiags**2) + np.sum(icf[:, d:] ** 2)
    ) - wishart_m * np.sum(sum_qs)
    const = constant_terms(n, d, K, wishart_gamma, wishart_m)
    return const + slse - n * logsumexp(alphas, axis=0) + prior


def gmm_objective_no_einsum(np, logsumexp, alphas, means, icf, x, wishart_gamma, wishart_m):
    """The same objective with only 2-D matrix products, reshapes and broadcasting.

    Every ``Q_k`` comes from one product with constant 0/1 matrices, and every ``Q_k x_i`` from
    one product ``x @ Q.T`` with the ``Q_k`` stacked as a (K d, d) matrix; ``Q_k mu_k`` is
    subtracted afterwards: ``Q_k (x_i - mu_k) = Q_k x_i - Q_k mu_k``.
    """
    n, d = x.shape
    K = alphas.shape[0]
    s_diag, s_low = tril_selection(d)  # constants
    Qdiags = np.exp(icf[:, :d])
    sum_qs = np.sum(icf[:, :d], axis=1)
    Qs = (Qdiags @ s_diag + icf[:, d:] @ s_low).reshape(K, d, d)  # Qs[k, i, j] = Q_k[i, j]
    Qmu = np.sum(Qs * means[:, None, :], axis=2)  # (K, d): Q_k mu_k
    Qx = (x @ Qs.reshape(K * d, d).T).reshape(n, K, d)  # Qx[i, k] = Q_k x_i
    sqsum_Lxcentered = np.sum((Qx - Qmu) ** 2, axis=2)  # (n, K)
    inner_term = alphas + sum_qs - 0.5 * sqsum_Lxcentered
    slse = np.sum(logsumexp(inner_term, axis=1))
    prior = 0.5 * wishart_gamma * wishart_gamma * (
        np.sum(Qdiags**2) + np.sum(icf[:, d:] ** 2)
    ) - wishart_m * np.sum(sum_qs)
    const = constant_terms(n, d, K, wishart_gamma, wishart_m)
    return const + slse - n * logsumexp(alphas, axis=0) + prior


def composed_logsumexp(np):
    """log-sum-exp over one axis from max, exp, sum and log: what any NumPy-like module traces."""

    def logsumexp(a, axis):
        m = np.max(a, axis=axis, keepdims=True)
        # Summing m over its axis of length 1 drops that axis, like the sum next to it.
        return np.log(np.sum(np.exp(a - m), axis=axis)) + np.sum(m, axis=axis)

    return logsumexp


def loss(np, data, logsumexp=None, objective=gmm_objective):
    """``f((alphas, means, icf))`` for module ``np``; ``x`` and the prior are in the closure."""
    x, gamma, m = data["x"], data["gamma"], data["m"]
    if logsumexp is None:
        logsumexp = composed_logsumexp(np)

    def f(params):
        alphas, means, icf = params
        return objective(np, logsumexp, alphas, means, icf, x, gamma, m)

    return f


# ------------------------------------------------------------------------------------------------
# The objective with torch ops
# ------------------------------------------------------------------------------------------------


def torch_loss(torch, data):
    x = torch.from_numpy(data["x"])
    gamma, wm = data["gamma"], data["m"]
    n, d = x.shape
    idx, mask = tril_gather(d)
    idx = torch.from_numpy(numpy.array(idx, dtype=numpy.int64))
    mask = torch.from_numpy(numpy.array(mask))

    def f(params):
        alphas, means, icf = params
        K = alphas.shape[0]
        Qdiags = torch.exp(icf[:, :d])
        sum_qs = torch.sum(icf[:, :d], dim=1)
        Ls = icf[:, idx] * mask
        xcentered = x[:, None, :] - means[None, :, :]
        Lxcentered = Qdiags * xcentered + torch.einsum("kij,nkj->nki", Ls, xcentered)
        sqsum_Lxcentered = torch.sum(Lxcentered**2, dim=2)
        inner_term = alphas + sum_qs - 0.5 * sqsum_Lxcentered
        slse = torch.sum(torch.logsumexp(inner_term, dim=1))
        prior = 0.5 * gamma * gamma * (
            torch.sum(Qdiags**2) + torch.sum(icf[:, d:] ** 2)
        ) - wm * torch.sum(sum_qs)
        const = constant_terms(n, d, K, gamma, wm)
        return const + slse - n * torch.logsumexp(alphas, dim=0) + prior

    return f


# ------------------------------------------------------------------------------------------------
# Hand-written gradient.  With z_ik = Q_k (x_i - mu_k), inner_ik = alphas_k + sum(icf[k, :d])
# - |z_ik|^2 / 2 and p_ik = softmax_k(inner_i.), the responsibilities:
#   df/dalphas_k     = sum_i p_ik - n softmax(alphas)_k
#   df/dz_ik         = -p_ik z_ik                                 =: -w_ik
#   df/dQ_k          = -sum_i w_ik (x_i - mu_k)^T      (only its diagonal and strict lower part)
#   df/dmu_k         = Q_k^T sum_i w_ik
#   df/dicf[k, j]    = q_kj (df/dQ_k)_jj + sum_i p_ik + gamma^2 q_kj^2 - m,  q_kj = exp(icf[k, j]),
#                      for j < d (the log-diagonal)
#   df/dicf[k, d+l]  = (df/dQ_k)_(r_l, c_l) + gamma^2 icf[k, d+l]  for the l-th packed entry (r, c)
# ------------------------------------------------------------------------------------------------


# Responsibilities p_ik = exp(inner_ik - max_k inner_ik) / s_i below e^-700 (s_i >= 1) are set to
# zero in both hand-written versions.  On the large problem about 3.5% of the p_ik fall in the
# subnormal range, and products with subnormal operands are ~100x slower, in the loops and in BLAS
# (measured: the gradient 0.47 s instead of 0.15 s); what they would add is below 1e-300 of every
# result, which changes no bit of it.
_FLUSH = -700.0


def hand_numpy(data):
    """The derivation above in vectorised NumPy: per component, one BLAS product forward and one
    back.  The reference every other contender is checked against."""
    x, gamma, wm = data["x"], data["gamma"], data["m"]
    n, d = x.shape

    def vg(params):
        alphas, means, icf = params
        K = alphas.shape[0]
        rows, cols = tril_layout(d)
        q = numpy.exp(icf[:, :d])
        sum_qs = numpy.sum(icf[:, :d], axis=1)
        Q = numpy.zeros((K, d, d))
        Q[:, rows, cols] = icf[:, d:]
        Q[:, numpy.arange(d), numpy.arange(d)] = q
        inner = numpy.empty((n, K))
        zs, xcs = [], []
        for k in range(K):
            xc = x - means[k]
            z = xc @ Q[k].T
            inner[:, k] = alphas[k] + sum_qs[k] - 0.5 * numpy.sum(z * z, axis=1)
            zs.append(z)
            xcs.append(xc)
        mx = numpy.max(inner, axis=1, keepdims=True)
        e = numpy.exp(inner - mx)
        e[inner - mx <= _FLUSH] = 0.0  # see _FLUSH
        s = numpy.sum(e, axis=1, keepdims=True)
        p = e / s
        am = numpy.max(alphas)
        ea = numpy.exp(alphas - am)
        lse_alphas = am + numpy.log(numpy.sum(ea))
        value = (
            constant_terms(n, d, K, gamma, wm)
            + numpy.sum(mx[:, 0] + numpy.log(s[:, 0]))
            - n * lse_alphas
            + 0.5 * gamma * gamma * (numpy.sum(q * q) + numpy.sum(icf[:, d:] ** 2))
            - wm * numpy.sum(sum_qs)
        )
        P = numpy.sum(p, axis=0)
        g_alphas = P - n * ea / numpy.sum(ea)
        g_means = numpy.empty((K, d))
        g_icf = numpy.empty_like(icf)
        for k in range(K):
            w = p[:, k : k + 1] * zs[k]
            dQ = -(w.T @ xcs[k])
            g_means[k] = numpy.sum(w, axis=0) @ Q[k]
            g_icf[k, :d] = q[k] * numpy.diagonal(dQ) + P[k] + gamma * gamma * q[k] ** 2 - wm
            g_icf[k, d:] = dQ[rows, cols] + gamma * gamma * icf[k, d:]
        return float(value), (g_alphas, g_means, g_icf)

    return vg


def hand_numpy_objective(data):
    x, gamma, wm = data["x"], data["gamma"], data["m"]
    n, d = x.shape

    def f(params):
        alphas, means, icf = params
        K = alphas.shape[0]
        rows, cols = tril_layout(d)
        q = numpy.exp(icf[:, :d])
        sum_qs = numpy.sum(icf[:, :d], axis=1)
        Q = numpy.zeros((K, d, d))
        Q[:, rows, cols] = icf[:, d:]
        Q[:, numpy.arange(d), numpy.arange(d)] = q
        inner = numpy.empty((n, K))
        for k in range(K):
            z = (x - means[k]) @ Q[k].T
            inner[:, k] = alphas[k] + sum_qs[k] - 0.5 * numpy.sum(z * z, axis=1)
        mx = numpy.max(inner, axis=1, keepdims=True)
        s = numpy.sum(numpy.exp(inner - mx), axis=1)
        am = numpy.max(alphas)
        lse_alphas = am + numpy.log(numpy.sum(numpy.exp(alphas - am)))
        return float(
            constant_terms(n, d, K, gamma, wm)
            + numpy.sum(mx[:, 0] + numpy.log(s))
            - n * lse_alphas
            + 0.5 * gamma * gamma * (numpy.sum(q * q) + numpy.sum(icf[:, d:] ** 2))
            - wm * numpy.sum(sum_qs)
        )

    return f


_JIT = numba.njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy", nogil=True)


@_JIT
def _nb_setup(alphas, means, icf, d):
    """Every Q_k stacked as the rows of one (K d, d) matrix (row k d + r is Q_k's row r), the
    q_kr = exp(icf[k, r]), alphas_k + sum(icf[k, :d]), and Q_k mu_k.  L_k's column c is
    icf[k, off_c : off_c + d - c - 1] (rows c+1 .. d-1), off_0 = d."""
    K = alphas.shape[0]
    Qs = numpy.zeros((K * d, d))
    q = numpy.empty((K, d))
    base = numpy.empty(K)
    Qmu = numpy.zeros((K, d))
    for k in range(K):
        s = 0.0
        for r in range(d):
            e = math.exp(icf[k, r])
            q[k, r] = e
            Qs[k * d + r, r] = e
            s += icf[k, r]
        base[k] = alphas[k] + s
        off = d
        for c in range(d - 1):
            for r in range(c + 1, d):
                Qs[k * d + r, c] = icf[k, off + r - c - 1]
            off += d - c - 1
        for r in range(d):
            acc = 0.0
            for c in range(r + 1):
                acc += Qs[k * d + r, c] * means[k, c]
            Qmu[k, r] = acc
    return Qs, q, base, Qmu


@_JIT
def _nb_prior_and_alphas(alphas, icf, q, gamma, wm):
    """The Wishart prior's parameter-dependent part; max(alphas) and sum(exp(alphas - max))."""
    K, d = q.shape
    frob = 0.0
    sum_qs = 0.0
    for k in range(K):
        for r in range(d):
            frob += q[k, r] * q[k, r]
            sum_qs += icf[k, r]
        for j in range(d, icf.shape[1]):
            frob += icf[k, j] * icf[k, j]
    am = -numpy.inf
    for k in range(K):
        am = max(am, alphas[k])
    sa = 0.0
    for k in range(K):
        sa += math.exp(alphas[k] - am)
    return 0.5 * gamma * gamma * frob - wm * sum_qs, am, sa


def _chunk(n, K, d):
    """Points per block: the block's (points, K d) products stay within about 2 MB of cache."""
    return max(16, min(n, (1 << 18) // (K * d)))


@_JIT
def _nb_inner(Z, Qmu, base, b, inner):
    """z_bk = Q_k x_b - Q_k mu_k, in place in Z's row b; inner_bk; returns max_k inner_bk."""
    K, d = Qmu.shape
    mx = -numpy.inf
    for k in range(K):
        sq = 0.0
        for r in range(d):
            z = Z[b, k * d + r] - Qmu[k, r]
            Z[b, k * d + r] = z
            sq += z * z
        t = base[k] - 0.5 * sq
        inner[k] = t
        mx = max(mx, t)
    return mx


@_JIT
def _nb_objective(alphas, means, icf, x, gamma, wm, const, chunk):
    n, d = x.shape
    K = alphas.shape[0]
    Qs, q, base, Qmu = _nb_setup(alphas, means, icf, d)
    QsT = Qs.T
    inner = numpy.empty(K)
    slse = 0.0
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        Z = numpy.dot(x[i0:i1], QsT)  # (points, K d): Q_k x_i for every k, BLAS
        for b in range(i1 - i0):
            mx = _nb_inner(Z, Qmu, base, b, inner)
            s = 0.0
            for k in range(K):
                t = inner[k] - mx
                if t > _FLUSH:
                    s += math.exp(t)
            slse += mx + math.log(s)
    prior, am, sa = _nb_prior_and_alphas(alphas, icf, q, gamma, wm)
    return const + slse - n * (am + math.log(sa)) + prior


@_JIT
def _nb_value_and_grad(alphas, means, icf, x, gamma, wm, const, chunk):
    n, d = x.shape
    K = alphas.shape[0]
    Qs, q, base, Qmu = _nb_setup(alphas, means, icf, d)
    QsT = Qs.T
    inner = numpy.empty(K)
    P = numpy.zeros(K)  # sum_i p_ik
    wsum = numpy.zeros((K, d))  # sum_i w_ik
    G = numpy.zeros((K * d, d))  # sum_i w_ik x_i^T, stacked like Qs
    slse = 0.0
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        xb = x[i0:i1]
        Z = numpy.dot(xb, QsT)
        for b in range(i1 - i0):
            mx = _nb_inner(Z, Qmu, base, b, inner)
            s = 0.0
            for k in range(K):
                t = inner[k] - mx
                e = math.exp(t) if t > _FLUSH else 0.0
                inner[k] = e
                s += e
            slse += mx + math.log(s)
            inv_s = 1.0 / s
            for k in range(K):
                pk = inner[k] * inv_s
                P[k] += pk
                for r in range(d):
                    w = pk * Z[b, k * d + r]
                    Z[b, k * d + r] = w
                    wsum[k, r] += w
        G += numpy.dot(Z.T, xb)  # BLAS again
    prior, am, sa = _nb_prior_and_alphas(alphas, icf, q, gamma, wm)
    g2 = gamma * gamma
    g_alphas = numpy.empty(K)
    g_means = numpy.zeros((K, d))
    g_icf = numpy.empty(icf.shape)
    for k in range(K):
        g_alphas[k] = P[k] - n * math.exp(alphas[k] - am) / sa
        # df/dQ_k[r, c] = -sum_i w_ik[r] (x_i - mu_k)[c] = -(G[k d + r, c] - wsum[k, r] mu_k[c])
        for r in range(d):
            dq = -(G[k * d + r, r] - wsum[k, r] * means[k, r])
            g_icf[k, r] = dq * q[k, r] + P[k] + g2 * q[k, r] * q[k, r] - wm
        off = d
        for c in range(d - 1):
            for r in range(c + 1, d):
                j = off + r - c - 1
                g_icf[k, j] = -(G[k * d + r, c] - wsum[k, r] * means[k, c]) + g2 * icf[k, j]
            off += d - c - 1
        # df/dmu_k = Q_k^T wsum_k
        for r in range(d):
            wr = wsum[k, r]
            for c in range(r + 1):
                g_means[k, c] += Qs[k * d + r, c] * wr
    return const + slse - n * (am + math.log(sa)) + prior, g_alphas, g_means, g_icf


def hand_numba(data):
    kernel = _nb_value_and_grad
    x, gamma, wm = data["x"], float(data["gamma"]), float(data["m"])
    n, d = x.shape

    def vg(params):
        alphas, means, icf = params
        K = alphas.shape[0]
        const = constant_terms(n, d, K, gamma, wm)
        value, ga, gm, gi = kernel(alphas, means, icf, x, gamma, wm, const, _chunk(n, K, d))
        return value, (ga, gm, gi)

    return vg


def hand_numba_objective(data):
    kernel = _nb_objective
    x, gamma, wm = data["x"], float(data["gamma"]), float(data["m"])
    n, d = x.shape

    def f(params):
        alphas, means, icf = params
        K = alphas.shape[0]
        const = constant_terms(n, d, K, gamma, wm)
        return kernel(alphas, means, icf, x, gamma, wm, const, _chunk(n, K, d))

    return f


# ------------------------------------------------------------------------------------------------
# Contenders.  A builder returns (vg, objective, to_numpy, note): vg() computes value and
# gradient of the problem's arguments (bound, already in the library's array type), objective()
# the value alone or None where the library has no separate way, to_numpy(out) turns vg's result
# into (float, (ndarray, ndarray, ndarray)) for the check.
# ------------------------------------------------------------------------------------------------


def build_hand_numba(data):
    vg, f = hand_numba(data), hand_numba_objective(data)
    arg = data["arg"]
    return (lambda: vg(arg)), (lambda: f(arg)), _identity, ""


def build_hand_numpy(data):
    vg, f = hand_numpy(data), hand_numpy_objective(data)
    arg = data["arg"]
    return (lambda: vg(arg)), (lambda: f(arg)), _identity, ""


def build_autograd(data):
    autograd = _import("autograd")
    anp = _import("autograd.numpy")
    special = _import("autograd.scipy.special")
    f = loss(anp, data, special.logsumexp)
    vg = autograd.value_and_grad(f)
    arg = data["arg"]
    # The objective alone: the same code on plain arrays, which autograd hands to NumPy.
    return (lambda: vg(arg)), (lambda: f(arg)), _identity, ""


def build_jax(data):
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = _import("jax.numpy")
    special = _import("jax.scipy.special")
    # Arrays placed on the device once, as a JAX program keeps them: no copy per call.
    jdata = dict(data, x=jnp.asarray(data["x"]))
    arg = tuple(jnp.asarray(a) for a in data["arg"])
    f = loss(jnp, jdata, special.logsumexp)
    vg = jax.jit(jax.value_and_grad(f))
    obj = jax.jit(f)

    def to_numpy(out):
        value, grad = out
        return float(value), tuple(numpy.asarray(g) for g in grad)

    return (
        (lambda: jax.block_until_ready(vg(arg))),
        (lambda: jax.block_until_ready(obj(arg))),
        to_numpy,
        "",
    )


def build_torch(data):
    torch = _import("torch")
    f = torch_loss(torch, data)
    arg = data["arg"]

    def vg():
        # NumPy in, NumPy out, like the other contenders; from_numpy and .numpy() share memory.
        leaves = tuple(torch.from_numpy(a).requires_grad_() for a in arg)
        out = f(leaves)
        out.backward()
        return out.item(), tuple(t.grad.numpy() for t in leaves)

    def obj():
        with torch.no_grad():
            return f(tuple(torch.from_numpy(a) for a in arg)).item()

    return vg, obj, _identity, ""


def _jitgrad_logsumexp():
    """jitgrad's ``scipy.special.logsumexp`` once it has one; until then, the composition."""
    try:
        special = importlib.import_module("jitgrad.scipy.special")
        return special.logsumexp, "logsumexp: jitgrad.scipy.special"
    except ModuleNotFoundError as e:
        if e.name not in ("jitgrad.scipy", "jitgrad.scipy.special"):
            raise
    except AttributeError:
        pass
    return None, "logsumexp: max-shifted composition (no jitgrad.scipy.special.logsumexp)"


def _build_jitgrad(data, objective):
    jitgrad = _import("jitgrad")
    jnp = _import("jitgrad.numpy")
    if objective is gmm_objective:
        logsumexp, note = _jitgrad_logsumexp()
    else:
        logsumexp, note = None, ""
    f = loss(jnp, data, logsumexp, objective)
    vg = jitgrad.value_and_grad(f, argnum=0)
    arg = data["arg"]
    # The objective alone: the same function compiled without derivatives (jitgrad.jit).
    obj = jitgrad.jit(f) if hasattr(jitgrad, "jit") else None
    return (lambda: vg(arg)), (obj and (lambda: obj(arg))), _identity, note


def build_jitgrad(data):
    return _build_jitgrad(data, gmm_objective)


def build_jitgrad_no_einsum(data):
    return _build_jitgrad(data, gmm_objective_no_einsum)


BUILDERS = {
    "hand-numba": build_hand_numba,
    "hand-numpy": build_hand_numpy,
    "autograd": build_autograd,
    "jax": build_jax,
    "torch": build_torch,
    "jitgrad": build_jitgrad,
    "jitgrad (no einsum)": build_jitgrad_no_einsum,
}
CONTENDERS = list(BUILDERS)


# ------------------------------------------------------------------------------------------------
# Checking and timing
# ------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    status: str = "missing"  # missing | skipped | error | ok | mismatch
    vg_s: float | None = None  # median over repeats of the time per call
    vg_min_s: float | None = None
    obj_s: float | None = None
    first_call_s: float | None = None
    max_rel_err: float | None = None
    note: str = ""


def max_rel_error(out, ref):
    """Largest error of (value, (g_alphas, g_means, g_icf)) relative to the reference, leaf by leaf
    (run.py's measure): |v - v_ref| / |v_ref|, and max|g - g_ref| / max|g_ref| per leaf, so that
    gradient entries near zero by cancellation do not fail on round-off.  NaN counts as inf."""
    value, grad = out
    ref_value, ref_grad = ref
    errs = [abs(float(value) - ref_value) / max(abs(ref_value), 1e-300)]
    if not isinstance(grad, (tuple, list)) or len(grad) != len(ref_grad):
        raise ValueError(f"gradient should be a tuple of {len(ref_grad)} arrays")
    for i, (g, r) in enumerate(zip(grad, ref_grad)):
        g = numpy.asarray(g)
        if g.shape != r.shape:
            raise ValueError(f"gradient leaf {i} has shape {g.shape}, expected {r.shape}")
        scale = max(float(numpy.max(numpy.abs(r))), 1e-300)
        errs.append(float(numpy.max(numpy.abs(g - r))) / scale)
    return max(math.inf if math.isnan(e) else e for e in errs)


def time_per_call(call, target_s, repeats):
    """(median, min) seconds per call over `repeats` loops of at least `target_s` each (one call
    each when a call takes longer).  The caller has made the first call already (which may have
    compiled: it says nothing of the next); one more call sizes the loop.  The garbage collector
    stays on but is emptied before each repeat."""
    t1 = _loop(call, 1)
    n = max(1, math.ceil(target_s / max(t1, 1e-9)))
    if n > 1:  # re-estimate on a short loop: the single call may have been slow
        m = max(1, n // 10)
        n = max(1, math.ceil(target_s / max(_loop(call, m) / m, 1e-9)))
    per_call = []
    for _ in range(repeats):
        gc.collect()
        per_call.append(_loop(call, n) / n)
    return statistics.median(per_call), min(per_call)


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _numba_state():
    """(signatures compiled or loaded, cache hits) of the hand-written value-and-gradient kernel."""
    k = _nb_value_and_grad
    return len(k.signatures), sum(k.stats.cache_hits.values())


def run_contender(name, data, ref, args) -> Cell:
    cell = Cell()
    try:
        vg, obj, to_numpy, cell.note = BUILDERS[name](data)
    except Missing as e:
        cell.note = str(e)
        return cell
    except Exception as e:  # noqa: BLE001  (any failure is reported in the cell)
        cell.status, cell.note = "error", _first_line(e)
        return cell
    try:
        before = _numba_state() if name == "hand-numba" else None
        t0 = time.perf_counter()
        out = vg()
        cell.first_call_s = time.perf_counter() - t0
        if before is not None:
            after = _numba_state()
            if after[0] == before[0]:
                what = "compiled earlier in this process"
            elif after[1] > before[1]:
                what = "loaded from Numba's cache"
            else:
                what = "Numba compile (cache=True: later runs load it)"
            cell.note = "first call: " + what
        try:
            cell.max_rel_err = max_rel_error(to_numpy(out), ref)
            cell.status = "ok" if cell.max_rel_err <= RTOL else "mismatch"
        except ValueError as e:
            cell.status = "mismatch"
            cell.note = "; ".join(filter(None, [cell.note, str(e)]))
        if cell.first_call_s > args.budget:
            cell.vg_s = None
            cell.note = "; ".join(
                filter(
                    None,
                    [
                        cell.note,
                        f"not timed: the first call took {cell.first_call_s:.0f} s "
                        f"> --budget {args.budget:g} s",
                    ],
                )
            )
            return cell
        # A wrong answer is still timed, and flagged: hiding it would hide the bug.
        cell.vg_s, cell.vg_min_s = time_per_call(vg, args.target, args.repeats)
        if obj is not None:
            value = float(obj())
            if not abs(value - ref[0]) <= RTOL * abs(ref[0]):
                cell.status = "mismatch"
                cell.note = "; ".join(filter(None, [cell.note, f"objective {value!r}"]))
            cell.obj_s, _ = time_per_call(obj, args.target, args.repeats)
    except Exception as e:  # noqa: BLE001
        cell.status = "error"
        cell.note = "; ".join(filter(None, [cell.note, _first_line(e)]))
    return cell


def check_finite_differences(d=4, K=3, n=30, h=1e-6):
    """Max relative error (per leaf, as above) of both hand-written gradients against central
    differences of the hand-written NumPy objective, on a small problem with gamma != 1 and
    m != 0 so that every term of the prior is exercised."""
    data = make_data(d, K, n)
    data["gamma"], data["m"] = 1.3, 2
    arg = data["arg"]
    f = hand_numpy_objective(data)
    fd = []
    for leaf in range(3):
        g = numpy.empty_like(arg[leaf])
        for j in numpy.ndindex(g.shape):
            plus, minus = [a.copy() for a in arg], [a.copy() for a in arg]
            plus[leaf][j] += h
            minus[leaf][j] -= h
            g[j] = (f(tuple(plus)) - f(tuple(minus))) / (2 * h)
        fd.append(g)
    ref = (f(arg), tuple(fd))
    return {
        "hand-numba": max_rel_error(hand_numba(data)(arg), ref),
        "hand-numpy": max_rel_error(hand_numpy(data)(arg), ref),
    }


# ------------------------------------------------------------------------------------------------
# What jitgrad needs for the ADBench formulation, feature by feature, each checked
# ------------------------------------------------------------------------------------------------


def probe_jitgrad():
    """[(feature, verdict)]: does jitgrad trace each construct gmm_objective uses beyond
    gmm_objective_no_einsum's, and are its value and gradient right (against NumPy)?"""
    try:
        jitgrad = _import("jitgrad")
        jnp = _import("jitgrad.numpy")
    except Exception as e:  # noqa: BLE001
        return [("import jitgrad.numpy", _first_line(e))]
    rng = numpy.random.default_rng(0)
    K, d, nn = 3, 4, 5
    idx, mask = tril_gather(d)
    a = rng.standard_normal((K, d + d * (d - 1) // 2))
    W = rng.standard_normal((K, d, d))
    g_gather = numpy.zeros_like(a)
    numpy.add.at(g_gather, (slice(None), idx), W)
    A, B, C = (rng.standard_normal(s) for s in [(K, d, d), (nn, K, d), (nn, K, d)])
    M = rng.standard_normal((nn, K))
    soft = numpy.exp(M - M.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    lse = numpy.log(numpy.sum(numpy.exp(M), axis=1))

    def check(fun, args, value, grads):
        try:
            v, g = jitgrad.value_and_grad(fun, argnum=tuple(range(len(args))))(*args)
        except Exception as e:  # noqa: BLE001
            return "not supported: " + _first_line(e)
        err = max_rel_error((v, g), (value, grads))
        return "supported, correct" if err <= 1e-12 else f"supported, WRONG: rel. error {err:.1e}"

    out = [
        (
            "icf[:, idx] with a constant 2-D integer array (the triangle's gather)",
            check(
                lambda a: jnp.sum(a[:, idx] * W), (a,), float(numpy.sum(a[:, idx] * W)), (g_gather,)
            ),
        ),
        (
            'np.einsum("kij,nkj->nki", ...) (Q_k (x_i - mu_k))',
            check(
                lambda A, B: jnp.sum(jnp.einsum("kij,nkj->nki", A, B) * C),
                (A, B),
                float(numpy.sum(numpy.einsum("kij,nkj->nki", A, B) * C)),
                (numpy.einsum("nki,nkj->kij", C, B), numpy.einsum("kij,nki->nkj", A, C)),
            ),
        ),
    ]
    try:
        special_lse, _ = _jitgrad_logsumexp()
    except Exception as e:  # noqa: BLE001
        out.append(("jitgrad.scipy.special.logsumexp", "import fails: " + _first_line(e)))
        return out
    if special_lse is None:
        out.append(("jitgrad.scipy.special.logsumexp", "not supported: no such function"))
    else:
        out.append(
            (
                "jitgrad.scipy.special.logsumexp(a, axis=1)",
                check(lambda M: jnp.sum(special_lse(M, axis=1)), (M,), float(lse.sum()), (soft,)),
            )
        )
    return out


# ------------------------------------------------------------------------------------------------
# Environment and printing
# ------------------------------------------------------------------------------------------------


def _version(mod):
    try:
        return importlib.metadata.version(mod)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_revision():
    def git(*a):
        return subprocess.run(
            ["git", *a], cwd=REPO_ROOT, check=False, capture_output=True, text=True
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD") or "no commit"
        dirty = git("status", "--porcelain", "--", "jitgrad")
        return rev + (" + uncommitted changes in jitgrad/" if dirty else "")
    except OSError:
        return "unknown"


def environment():
    env = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "jitgrad git": _git_revision(),
    }
    for mod in ["numpy", "numba", "scipy", "autograd", "jax", "jaxlib", "torch"]:
        env[mod] = _version(mod)
    threads = [
        f"{k}={os.environ[k]}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
        if k in os.environ
    ]
    env["thread env"] = " ".join(threads) or "(defaults: BLAS, XLA, torch may use every core)"
    if hasattr(os, "getloadavg"):
        env["load avg"] = " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)"
    return env


def fmt_us(s):
    if s is None:
        return "-"
    us = s * 1e6
    if us < 10:
        return f"{us:.2f}"
    if us < 100:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def fmt_s(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_ratio(a, b):
    if a is None or b is None:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 100 else f"{r:,.0f}x"


def markdown_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return (
            "| "
            + " | ".join(
                str(c).ljust(w) if i == 0 or i == len(cells) - 1 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    out = [
        line(header),
        "|"
        + "|".join(
            ":" + "-" * (w + 1) if i == 0 or i == len(widths) - 1 else "-" * (w + 1) + ":"
            for i, w in enumerate(widths)
        )
        + "|",
    ]
    return "\n".join(out + [line(r) for r in rows])


def size_table(cells):
    """The Markdown table of one size, and the notes too long for it, numbered."""
    ref = cells.get("hand-numba")
    ref_ok = ref is not None and ref.status == "ok"
    header = [
        "contender",
        "value+grad µs",
        "objective µs",
        "grad/obj",
        "vs hand-numba",
        "first call",
        "max rel err",
        "note",
    ]
    rows, footnotes = [], []

    def note(text):
        if len(text) <= 60:
            return text
        footnotes.append(text)
        return f"[{len(footnotes)}] " + text[:50].rstrip() + "..."

    for name, c in cells.items():
        if c.vg_s is None:
            value = "ERROR" if c.status == "error" else "-"
            err = "-" if c.max_rel_err is None else f"{c.max_rel_err:.1e}"
            rows.append([name, value, "-", "-", "-", fmt_s(c.first_call_s), err, note(c.note)])
            continue
        flag = " !" if c.status == "mismatch" else ""
        rows.append(
            [
                name,
                fmt_us(c.vg_s) + flag,
                fmt_us(c.obj_s),
                fmt_ratio(c.vg_s, c.obj_s) if c.status == "ok" else "-",
                fmt_ratio(c.vg_s, ref.vg_s) if ref_ok and c.status == "ok" else "-",
                fmt_s(c.first_call_s),
                "-" if c.max_rel_err is None else f"{c.max_rel_err:.1e}",
                note(c.note),
            ]
        )
    table = markdown_table(header, rows)
    return table + "".join(f"\n\n[{i}] {t}" for i, t in enumerate(footnotes, 1))


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.gmm",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", metavar="SIZE[,SIZE]", help="sizes to run, from: main, large")
    ap.add_argument(
        "--contenders", metavar="NAME[,NAME]", help="contenders to run: " + ", ".join(CONTENDERS)
    )
    ap.add_argument("--quick", action="store_true", help="3 repeats of >= 0.05 s (a smoke run)")
    ap.add_argument(
        "--budget",
        type=float,
        default=60.0,
        metavar="S",
        help="a contender whose first call takes longer than S seconds is not timed further "
        "(default 60)",
    )
    ap.add_argument(
        "--single-thread",
        action="store_true",
        help="BLAS, Numba, XLA and torch on one thread each (steadier on a shared machine)",
    )
    args = ap.parse_args(argv)
    args.target, args.repeats = (0.05, 3) if args.quick else (0.2, 5)
    args.sizes = [s.strip() for s in (args.only or "main,large").split(",") if s.strip()]
    bad = [s for s in args.sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown size(s) {', '.join(bad)}; choose from {', '.join(SIZES)}")
    args.contenders = (
        [c.strip() for c in args.contenders.split(",") if c.strip()]
        if args.contenders
        else list(CONTENDERS)
    )
    bad = [c for c in args.contenders if c not in BUILDERS]
    if bad:
        ap.error(f"unknown contender(s) {', '.join(bad)}; choose from {', '.join(CONTENDERS)}")
    if "hand-numpy" not in args.contenders:
        args.contenders.insert(0, "hand-numpy")  # the reference
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.single_thread:
        reexec_single_threaded("benchmarks.gmm", argv)
    own_cache = "JITGRAD_CACHE_DIR" not in os.environ
    if own_cache:
        # An empty kernel cache of our own: jitgrad's first call then traces and compiles.
        os.environ["JITGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="jitgrad-gmm-cache-")
    cache = os.environ["JITGRAD_CACHE_DIR"]
    cache_was_warm = os.path.isdir(cache) and bool(os.listdir(cache))
    try:
        return _run(args, cache, cache_was_warm)
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)


def _run(args, cache, cache_was_warm):
    started = time.perf_counter()
    load = LoadMonitor()
    results = {}
    for size in args.sizes:
        d, K, n = SIZES[size]
        data = make_data(d, K, n)
        ref = hand_numpy(data)(data["arg"])
        print(
            f"[{time.perf_counter() - started:6.1f} s] {size} (d={d}, K={K}, n={n}):",
            end="",
            flush=True,
        )
        repeats = args.repeats if size == "main" else min(args.repeats, 3)
        sub = argparse.Namespace(target=args.target, repeats=repeats, budget=args.budget)
        cells = {}
        # hand-numba first among the compiled ones: Numba's one-time start-up then falls on it.
        order = ["hand-numpy", "hand-numba"] + [
            c for c in CONTENDERS if c not in ("hand-numpy", "hand-numba")
        ]
        for name in order:
            if name not in args.contenders:
                continue
            print(f" {name}", end="", flush=True)
            cells[name] = run_contender(name, data, ref, sub)
            gc.collect()
        print()
        results[size] = cells
        del data, ref
        gc.collect()

    fd = check_finite_differences()
    probes = probe_jitgrad() if any(c.startswith("jitgrad") for c in args.contenders) else []

    print()
    print("## ADBench GMM objective: value and gradient w.r.t. (alphas, means, icf)")
    print()
    for size, cells in results.items():
        d, K, n = SIZES[size]
        print(
            f"### {size}: d={d}, K={K}, n={n} ({(d + d * (d - 1) // 2 + d + 1) * K:,} parameters)"
        )
        print()
        print(size_table(cells))
        print()
    print(
        f"µs per call, median of {args.repeats} repeats (3 at the large size), each a loop of >= "
        f"{args.target:g} s or one call.  grad/obj: ADBench's ratio, value+grad over the\n"
        "same library's objective alone (ADBench: hand-written 1.9-7.2x, Tapenade 3.7-15x, "
        "autograd 22-107x).\nvs hand-numba: value+grad over hand-numba's.  first call: includes "
        "tracing and compiling (jax, jitgrad) or loading\nNumba's cache (hand-numba, "
        "cache=True).  '!': disagrees with hand-numpy beyond rtol "
        f"{RTOL:g}.  jitgrad kernel cache: {cache}"
        + (
            " (not empty at the start: jitgrad's first calls may be cache loads)"
            if cache_was_warm
            else " (empty at the start: jitgrad's first calls compile)"
        )
    )
    print()
    print(
        "Hand-written gradients against central differences (h=1e-6) of the objective, d=4 K=3 "
        "n=30, gamma=1.3, m=2: max rel err "
        + ", ".join(f"{k} {v:.1e}" for k, v in fd.items())
        + " (the other contenders are checked against hand-numpy in the tables)"
    )
    if probes:
        print()
        print("jitgrad, the constructs gmm_objective needs beyond what the no-einsum version uses:")
        for feature, verdict in probes:
            print(f"  {feature}: {verdict}")
    print()
    print("Machine and versions")
    env = run_conditions(environment(), load)
    for k, v in env.items():
        print(f"  {k:<11} {v}")
    print(f"\nTotal run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
