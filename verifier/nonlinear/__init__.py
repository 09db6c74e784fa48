"""Integer-only primitives for the non-linear functions (docs/fixed-point-nonlinear.md).

- `tables`: elementwise functions of a 16-bit activation as a lookup table built at compile time
  (correctly rounded per entry) and applied at run time with one clip and one gather.
- `exp_log`: integer exp2/log2 by range reduction over spec-constant tables, and what is built on them:
  exp of a non-positive argument, softmax, log-softmax, powers of wide (int64) values.
- `roots`: integer square root, division of two tensors, layer normalisation.

Run-time functions take and return int64 arrays; float appears only in the compile-time builders.
"""

from verifier.nonlinear.exp_log import exp2, exp_neg, log2, log_softmax, pow_positive, pow_tensor, softmax
from verifier.nonlinear.roots import divide, isqrt, layer_norm, layer_norm_eps, sqrt_round
from verifier.nonlinear.tables import apply_table, build_table, choose_out_frac

__all__ = [
    "apply_table", "build_table", "choose_out_frac",
    "exp2", "exp_neg", "log2", "log_softmax", "pow_positive", "pow_tensor", "softmax",
    "divide", "isqrt", "layer_norm", "layer_norm_eps", "sqrt_round",
]
