"""jitgrad: trace a NumPy function once, derive its reverse-mode adjoint as IR, and compile the
forward and backward passes into fused Numba loops, cached per input signature.

The pipeline, one module per stage:
    trace.py (user function -> IR) -> ir.py -> ad.py (reverse mode, IR -> IR)
    -> fuse.py (loop nests) -> codegen.py (Numba source) -> compile.py (cached kernel) -> api.py
"""

from . import numpy  # noqa: F401  (registers jitgrad.numpy, which tracers dispatch to)
from .api import (Explanation, elementwise_grad, execution, explain, grad, hessian,
                  hessian_vector_product, holomorphic_grad, jacobian, jit, jit_grad, make_vjp,
                  tier_stats, value_and_grad)
from .compile import clear_cache
from .operators import (checkpoint, deriv, grad_and_aux, grad_named, hessian_tensor_product,
                        make_ggnvp, jvp, make_hvp, make_jvp, make_jvp_reversemode,
                        tensor_jacobian_product, vector_jacobian_product)
from .control import cond, fori_loop, while_loop
from .errors import (ArgumentError, JitgradError, JitgradInternalError, JitgradWarning,
                     ShapeError, TracingError)


__version__ = "0.1.0"
__all__ = ["grad", "value_and_grad", "jit_grad", "jit", "elementwise_grad", "jacobian", "hessian",
           "hessian_vector_product", "holomorphic_grad", "make_vjp", "explain", "Explanation",
           "while_loop", "fori_loop", "cond", "clear_cache", "execution", "tier_stats", "make_jvp",
           "jvp", "make_jvp_reversemode", "deriv", "make_hvp", "hessian_tensor_product",
           "tensor_jacobian_product", "vector_jacobian_product", "make_ggnvp", "grad_and_aux",
           "grad_named", "checkpoint", "JitgradError",
           "TracingError", "ShapeError", "ArgumentError", "JitgradInternalError", "JitgradWarning"]
