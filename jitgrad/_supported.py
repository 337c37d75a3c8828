"""docs/numpy.md, made from the registry (`jitgrad.ops.REGISTRY`): every supported name per
module, next to what autograd differentiates.  `python -m jitgrad._supported > docs/numpy.md`
writes it; tests/test_supported.py keeps the file in sync with the code.
"""

from __future__ import annotations

import importlib

# What autograd 1.9.1 differentiates, per module: its primitives with VJPs (autograd.core's
# primitive_vjps, by the names its modules export them under) and the functions its
# numpy_wrapper composes from them.  A snapshot, so that this page needs no autograd installed.
AUTOGRAD = {
    "numpy": """abs absolute acos acosh add amax amin angle append arccos arccosh arcsin arcsinh
        arctan arctan2 arctanh array array_split asin asinh atan atan2 atanh atleast_1d
        atleast_2d atleast_3d broadcast_to clip column_stack concatenate conj conjugate cos cosh
        cross cumsum deg2rad degrees diag diagonal diff divide dot dsplit dstack einsum exp exp2
        expand_dims expm1 fabs fliplr flipud fmax fmin full gradient hsplit hstack hypot imag
        inner kron linspace log log10 log1p log2 logaddexp logaddexp2 matmul max maximum mean min
        minimum mod moveaxis multiply nan_to_num negative outer pad partition permute_dims pow
        power prod rad2deg radians ravel real real_if_close reciprocal remainder repeat reshape
        roll rollaxis rot90 row_stack select sin sinc sinh sort split sqrt square squeeze stack
        std subtract sum swapaxes tan tanh tensordot tile trace transpose tril triu true_divide
        var vsplit vstack where""",
    "numpy.linalg": "cholesky det eig eigh inv norm pinv slogdet solve svd",
    "numpy.fft": """fft fft2 fftn fftshift ifft ifft2 ifftn ifftshift irfft irfft2 irfftn rfft
        rfft2 rfftn""",
    "scipy.special": """beta betainc betaln digamma erf erfc erfcinv erfinv expit gamma gammainc
        gammaincc gammaln gammasgn i0 i1 iv ive j0 j1 jn logit logsumexp multigammaln polygamma
        psi rgamma y0 y1 yn""",
    "scipy.linalg": "solve_banded solve_sylvester solve_triangular sqrtm",
    "scipy.signal": "convolve",
    "scipy.integrate": "odeint",
    "scipy.misc": "logsumexp",
    "scipy.stats.beta": "cdf logpdf pdf",
    "scipy.stats.chi2": "cdf logpdf pdf",
    "scipy.stats.dirichlet": "logpdf pdf",
    "scipy.stats.gamma": "cdf logpdf pdf",
    "scipy.stats.multivariate_normal": "entropy logpdf pdf",
    "scipy.stats.norm": "cdf logcdf logpdf logsf pdf sf",
    "scipy.stats.poisson": "cdf logpmf pmf",
    "scipy.stats.t": "cdf logcdf logpdf pdf",
}
AUTOGRAD = {module: frozenset(names.split()) for module, names in AUTOGRAD.items()}

# The modules users import, in the order the page lists them.
MODULES = ["numpy", "numpy.linalg", "numpy.fft", "scipy.special", "scipy.stats.norm",
           "scipy.stats.multivariate_normal", "scipy.stats.t", "scipy.stats.beta",
           "scipy.stats.gamma", "scipy.stats.dirichlet", "scipy.stats.poisson",
           "scipy.stats.chi2", "scipy.linalg", "scipy.signal", "scipy.misc", "scipy.integrate"]

INTRO = """\
# What jitgrad traces

<!-- Made by `python -m jitgrad._supported > docs/numpy.md` from jitgrad's registry of
functions; tests/test_supported.py fails when this file is out of date. Do not edit by hand. -->

`import jitgrad.numpy as np` gives NumPy's namespace, and `jitgrad.numpy.linalg`,
`jitgrad.numpy.fft`, `jitgrad.numpy.random`, `jitgrad.scipy.special`, `jitgrad.scipy.stats.*`,
`jitgrad.scipy.linalg`, `jitgrad.scipy.signal`, `jitgrad.scipy.integrate` mirror NumPy's and
SciPy's modules (as autograd's do: change `autograd` to `jitgrad` in the import lines).  The
functions below trace and differentiate; every other name is NumPy's or SciPy's own, works on
plain arrays, and raises a clear `TracingError` naming itself (`numpy.linalg.lstsq is not
supported on traced values`) when it meets a traced value.  NumPy's own functions called on a
traced value (`numpy.exp(x)`) are routed to these.  Python control flow on traced values (`if`,
`while`, `for`, `and`/`or`, `break`/`continue`/`return` in loops) is compiled: see
docs/control-flow.md.

Conventions, as in autograd: non-differentiable functions (`floor`, `round`, `sign`, `argmax`,
comparisons, ...) have zero gradients; `abs` has derivative `sign(x)` (0 at 0); `max`, `min`,
`maximum`, `minimum` split the gradient evenly between tied elements.  Broadcasting follows NumPy.
Arrays read from the enclosing scope are kernel arguments, read afresh at every call.

Methods of traced arrays: {methods}.
"""


def _summary(fn) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    line = " ".join(doc.split("\n\n")[0].split())
    return line.replace("|", "\\|")


def _load_all() -> dict:
    from .ops import REGISTRY

    importlib.import_module("jitgrad.numpy")
    for module in MODULES:
        if module.startswith("scipy"):
            try:
                importlib.import_module(f"jitgrad.{module}")
            except ModuleNotFoundError as e:
                if not (e.name or "").startswith(("jitgrad.scipy", "scipy")):
                    raise
    return REGISTRY


def counts() -> dict:
    """module -> (names jitgrad traces, names autograd differentiates, autograd's that jitgrad
    traces too)."""
    registry = _load_all()
    out = {}
    for module in MODULES:
        ours = set(registry.get(module, {}))
        theirs = AUTOGRAD.get(module, frozenset())
        out[module] = (len(ours), len(theirs), len(ours & theirs))
    return out


def markdown() -> str:
    from .trace import _METHODS, Tracer

    registry = _load_all()
    # Tracer's own attributes, and the methods that forward to a function jitgrad has.
    methods = sorted({name for name in vars(Tracer) if not name.startswith("_")}
                     | {name for name, fn in _METHODS.items() if fn in registry["numpy"]})
    lines = [INTRO.format(methods=" ".join(f"`x.{m}`" for m in methods)), "## Coverage", "",
             "| module | jitgrad traces | autograd differentiates | both |", "|---|---|---|---|"]
    total = [0, 0, 0]
    for module, (ours, theirs, both) in counts().items():
        lines.append(f"| `{module}` | {ours} | {theirs} | {both} |")
        total = [t + n for t, n in zip(total, (ours, theirs, both))]
    lines.append(f"| all | {total[0]} | {total[1]} | {total[2]} |")
    for module in MODULES:
        table = registry.get(module, {})
        missing = sorted(AUTOGRAD.get(module, frozenset()) - set(table))
        lines += ["", f"## `{module}`", ""]
        if table:
            lines += ["| name | what it is |", "|---|---|"]
            lines += [f"| `{name}` | {_summary(fn)} |" for name, fn in sorted(table.items())]
        else:
            lines.append("Nothing traced yet.")
        if missing:
            lines += ["", "autograd differentiates these, jitgrad does not trace them yet: "
                      + " ".join(f"`{n}`" for n in missing) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
