"""The benchmark problems, each written once per kind of backend.

A problem is a loss ``f(arg) -> scalar`` plus the seeded data it needs.  The NumPy-like backends
(jitgrad, autograd, jax) share one definition: a *factory* ``loss(np, data)`` that takes the
numpy-like module and returns ``f``.  Arrays the loss reads but is not differentiated against
(``inputs``/``targets``, ``X``/``Y``) are captured by ``f`` as a closure, because that is how
people write such losses and it is the case jitgrad's tracer has to handle.  Torch gets its own
factory written with torch ops, since ``torch`` is not NumPy-like enough to share the code.

The jitgrad versions may only use the functions jitgrad promises: arithmetic operators, ``**``,
``np.sum/mean/max`` (``axis=``, ``keepdims=``), ``np.exp/log/log1p/sin/tanh``, ``np.dot``, ``@``
and basic slicing.  Every factory below keeps to that subset.

This module imports only NumPy, so a fresh subprocess can build a problem's data without
importing numba or jitgrad (see ``run.py``'s first-call measurement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy

SEED = 20240601


# ------------------------------------------------------------------------------------------------
# Loss factories for NumPy-like modules (jitgrad.numpy, autograd.numpy, jax.numpy)
# ------------------------------------------------------------------------------------------------


def rosenbrock(np, data):
    def f(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return f


def elementwise_chain(np, data):
    def f(x):
        return np.sum(np.sin(x) * np.exp(-x * x) + np.log1p(x * x))

    return f


def logistic_regression(np, data):
    # autograd's examples/logistic_regression.py, verbatim apart from the names of the closure.
    inputs, targets = data["inputs"], data["targets"]

    def sigmoid(z):
        return 0.5 * (np.tanh(z / 2.0) + 1.0)

    def f(weights):
        preds = sigmoid(np.dot(inputs, weights))
        label_probabilities = preds * targets + (1.0 - preds) * (1.0 - targets)
        return -np.sum(np.log(label_probabilities))

    return f


def mlp(np, data):
    X, Y = data["X"], data["Y"]
    batch = X.shape[0]

    def f(params):
        W1, b1, W2, b2 = params
        h = np.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        # Stable log-softmax: subtract the row max before exponentiating.
        m = np.max(logits, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
        return -np.sum(Y * (logits - lse)) / batch

    return f


# ------------------------------------------------------------------------------------------------
# The same losses with torch ops.  Each factory returns f(arg) taking torch tensors.
# ------------------------------------------------------------------------------------------------


def rosenbrock_torch(torch, data):
    def f(x):
        return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return f


def elementwise_chain_torch(torch, data):
    def f(x):
        return torch.sum(torch.sin(x) * torch.exp(-x * x) + torch.log1p(x * x))

    return f


def logistic_regression_torch(torch, data):
    inputs = torch.from_numpy(data["inputs"])
    targets = torch.from_numpy(data["targets"])

    def f(weights):
        preds = 0.5 * (torch.tanh(inputs @ weights / 2.0) + 1.0)
        label_probabilities = preds * targets + (1.0 - preds) * (1.0 - targets)
        return -torch.sum(torch.log(label_probabilities))

    return f


def mlp_torch(torch, data):
    X = torch.from_numpy(data["X"])
    Y = torch.from_numpy(data["Y"])
    batch = X.shape[0]

    def f(params):
        W1, b1, W2, b2 = params
        h = torch.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        m = torch.amax(logits, dim=1, keepdim=True)
        lse = m + torch.log(torch.sum(torch.exp(logits - m), dim=1, keepdim=True))
        return -torch.sum(Y * (logits - lse)) / batch

    return f


# ------------------------------------------------------------------------------------------------
# Seeded data.  Every maker returns {"arg": <differentiated argument>, ...closure arrays}.
# ------------------------------------------------------------------------------------------------


def _vector_data(n, low, high):
    def make():
        rng = numpy.random.default_rng(SEED + n)
        return {"arg": rng.uniform(low, high, size=n)}

    return make


def _logreg_data(n_samples=20_000, n_features=100):
    def make():
        rng = numpy.random.default_rng(SEED)
        inputs = rng.standard_normal((n_samples, n_features))
        true_w = rng.standard_normal(n_features) / numpy.sqrt(n_features)
        targets = (rng.uniform(size=n_samples) < 1 / (1 + numpy.exp(-inputs @ true_w))) * 1.0
        # Small weights keep every label probability well inside (0, 1), so log() is tame and
        # the comparison between backends measures arithmetic, not cancellation.
        weights = 0.1 * rng.standard_normal(n_features)
        return {"arg": weights, "inputs": inputs, "targets": targets.astype(numpy.float64)}

    return make


def _mlp_data(batch=256, n_in=784, n_hidden=128, n_out=10):
    def make():
        rng = numpy.random.default_rng(SEED)
        X = rng.standard_normal((batch, n_in))
        Y = numpy.eye(n_out)[rng.integers(0, n_out, size=batch)]
        params = (
            rng.standard_normal((n_in, n_hidden)) / numpy.sqrt(n_in),
            0.1 * rng.standard_normal(n_hidden),
            rng.standard_normal((n_hidden, n_out)) / numpy.sqrt(n_hidden),
            0.1 * rng.standard_normal(n_out),
        )
        return {"arg": params, "X": X, "Y": Y}

    return make


# ------------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    name: str
    description: str
    make_data: Callable[[], dict[str, Any]]
    loss: Callable  # loss(np_module, data) -> f
    torch_loss: Callable  # torch_loss(torch_module, data) -> f
    handwritten: str  # the stem of the functions in handwritten.py


PROBLEMS = [
    Problem(
        "rosenbrock-100",
        "Rosenbrock, x of 100",
        _vector_data(100, -2.0, 2.0),
        rosenbrock,
        rosenbrock_torch,
        "rosenbrock",
    ),
    Problem(
        "rosenbrock-1M",
        "Rosenbrock, x of 1,000,000",
        _vector_data(1_000_000, -2.0, 2.0),
        rosenbrock,
        rosenbrock_torch,
        "rosenbrock",
    ),
    Problem(
        "chain-1k",
        "sum(sin(x) exp(-x^2) + log1p(x^2)), x of 1,000",
        _vector_data(1000, -3.0, 3.0),
        elementwise_chain,
        elementwise_chain_torch,
        "chain",
    ),
    Problem(
        "chain-1M",
        "sum(sin(x) exp(-x^2) + log1p(x^2)), x of 1,000,000",
        _vector_data(1_000_000, -3.0, 3.0),
        elementwise_chain,
        elementwise_chain_torch,
        "chain",
    ),
    Problem(
        "logreg",
        "logistic regression, 20,000 x 100 inputs, grad of the 100 weights",
        _logreg_data(),
        logistic_regression,
        logistic_regression_torch,
        "logreg",
    ),
    Problem(
        "mlp",
        "tanh MLP 784-128-10, softmax cross-entropy, batch 256, grad of (W1,b1,W2,b2)",
        _mlp_data(),
        mlp,
        mlp_torch,
        "mlp",
    ),
]

BY_NAME = {p.name: p for p in PROBLEMS}
