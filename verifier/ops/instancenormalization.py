import numpy as np

from verifier.nonlinear.roots import MAX_NORM_BITS, layer_norm, layer_norm_eps
from verifier.ops import CompileContext, Lowering
from verifier.ops._norm import gamma_frac_for, quantize_beta, quantize_gamma


class InstanceNormalization:
    """Normalise each (batch, channel) over its spatial dims (N elements), then scale and shift per channel:
    the integer steps of LayerNormalization (roots.layer_norm: exact sums, the Newton square root, one
    rounded reciprocal, z at 2**-24) with gamma_q[c] at a 20-bit frac and beta_q[c] at the product's frac,
    y = round_half_away((z * gamma_q[c] + beta_q[c]) / 2**(24 + f_gamma - f_out)), saturated.
    Scale and bias must be constants; the spatial dims static (they fix eps_q = round(eps * N**2 * 2**2f_in)).
    Error: at most 0.51 output step from the exact result on the quantized scale and bias."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, scale, bias = ctx.inputs[0], ctx.inputs[1], ctx.inputs[2]
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input")
        if not (scale.is_const and bias.is_const):
            ctx.unsupported("scale and bias computed at run time")
        if x.shape is None or len(x.shape) < 3 or any(d is None for d in x.shape[2:]):
            ctx.unsupported("needs the input's rank (>= 3) and static spatial dims")
        n = int(np.prod(x.shape[2:], dtype=np.int64))
        if n == 0 or n >= 1 << MAX_NORM_BITS:
            ctx.unsupported(f"normalises {n} elements; 1 to {(1 << MAX_NORM_BITS) - 1} keep the sums exact")
        per_channel = (-1,) + (1,) * (len(x.shape) - 2)
        gamma = np.asarray(scale.value, dtype=np.float64).reshape(per_channel)
        beta = np.asarray(bias.value, dtype=np.float64).reshape(per_channel)
        gamma_frac = gamma_frac_for(gamma, beta)
        out_frac = ctx.out_frac()
        attrs = {"gamma_frac": gamma_frac, "out_frac": out_frac,
                 "eps_q": layer_norm_eps(float(ctx.attr("epsilon", 1e-5)), n, x.frac)}
        consts = {"gamma": quantize_gamma(gamma, gamma_frac), "beta": quantize_beta(beta, gamma_frac)}
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        if x.ndim != consts["gamma"].ndim + 1 or x.shape[1] != consts["gamma"].shape[0]:
            raise ValueError(f"InstanceNormalization input of shape {x.shape} does not match "
                             f"{consts['gamma'].shape[0]} channels")
        return [layer_norm(x, x.ndim - 2, consts["gamma"], attrs["gamma_frac"], consts["beta"], attrs["eps_q"],
                           attrs["out_frac"])]
