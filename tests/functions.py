"""A corpus of example functions, each run through every mode by the tests (Tangent's
tests/functions.py): compiled against the reference interpreter, and against autograd.

Each entry: name -> (function written against a numpy-like module `np`, argument factory).
"""

import numpy

rs = numpy.random.RandomState(42)
A = rs.randn(6, 4)
B = rs.randn(4)
Y = numpy.eye(3)[rs.randint(0, 3, 5)]


def rosenbrock(np):
    return lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def chain(np):
    return lambda x: np.sum(np.sin(x) * np.exp(-x * x) + np.log1p(x * x))


def logistic(np):
    def loss(w):
        p = 0.5 * (np.tanh(np.dot(A, w) / 2.0) + 1.0)
        t = (A[:, 0] > 0) * 1.0
        return -np.sum(np.log(p * t + (1 - p) * (1 - t)))
    return loss


def softmax_xent(np):
    def loss(params):
        W, b = params
        logits = np.dot(rs_X, W) + b
        m = np.max(logits, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
        return -np.mean(np.sum(Y * (logits - lse), axis=1))
    return loss


rs_X = rs.randn(5, 4)


def broadcast_mix(np):
    def f(x, y):
        z = x[:, None] * y[None, :] - np.maximum(x[:, None], 0.2)
        return np.sum(np.where(z > 0, z ** 2, -z)) / (1.0 + np.sum(y * y))
    return f


def transposes(np):
    def f(x):
        y = np.transpose(x.reshape(2, 3, 4), (2, 0, 1))
        return np.sum(np.cos(y[1:, :, ::2]) * y[:-1, :, 1::2]) + np.max(y, axis=(0, 2)).sum()
    return f


def matvec_mix(np):
    def f(M, v):
        return np.dot(v, np.dot(M.T, np.tanh(np.dot(M, v)))) + np.sum(M @ v) + np.sum(v @ M.T)
    return f


def scalars(np):
    def f(x, y):
        return np.sin(x * y) + np.cos(x * y) + x ** 3 / y - np.sqrt(y) * np.arctan(x)
    return f


def fanout(np):
    def f(x):
        y = np.exp(-x)
        for _ in range(4):
            y = y * y + np.sin(y) - x / (1.0 + y)
        return np.sum(y) + np.min(y) * np.mean(y)
    return f


CORPUS = {
    "rosenbrock": (rosenbrock, lambda: (rs.rand(12),)),
    "chain": (chain, lambda: (rs.randn(50),)),
    "logistic": (logistic, lambda: (rs.randn(4),)),
    "softmax_xent": (softmax_xent, lambda: ((rs.randn(4, 3), rs.randn(3)),)),
    "broadcast_mix": (broadcast_mix, lambda: (rs.randn(5), rs.randn(3))),
    "transposes": (transposes, lambda: (rs.randn(24),)),
    "matvec_mix": (matvec_mix, lambda: (rs.randn(6, 4), rs.randn(4))),
    "scalars": (scalars, lambda: (0.7, 1.3)),
    "fanout": (fanout, lambda: (rs.rand(7),)),
}
