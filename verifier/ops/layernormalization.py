import numpy as np

from verifier.fixedpoint import frac_for_range, quantize
from verifier.nonlinear.roots import MAX_NORM_BITS, Z_FRAC, layer_norm, layer_norm_eps
from verifier.ops import CompileContext, Lowering

GAMMA_BITS = 20
BETA_LIMIT = 2.0**58


class LayerNormalization:
    """Normalise over the dims from `axis` on (N elements), scale and shift (docs/fixed-point-nonlinear.md,
    "Layer normalisation"): S = sum(q); c = N*q - S; V = N*sum(q*q) - S*S (both exact);
    D = max(V + eps_q, 1) with eps_q = round(epsilon * N**2 * 2**(2 f_in));
    z = c / sqrt(D) at 2**-24 via an even normalising shift, sqrt_round and one rounded reciprocal;
    y = round_half_away((z * gamma_q + beta_q) / 2**(24 + f_gamma - f_out)), saturated, where gamma_q is the
    scale at 2**-f_gamma (20 bits) and beta_q the bias at 2**-(24 + f_gamma).
    Error: at most 0.51 output step from the exact result on the quantized scale and bias."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, scale = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input, got a plain integer tensor")
        if any(name for name in ctx.output_names[1:]):
            ctx.unsupported("the Mean and InvStdDev outputs are not produced")
        if not scale.is_const or (bias is not None and not bias.is_const):
            ctx.unsupported("scale and bias must be constants")
        if x.shape is None:
            ctx.unsupported("needs the input's rank")
        rank = len(x.shape)
        axis = int(ctx.attr("axis", -1)) % rank
        dims = x.shape[axis:]
        if any(d is None for d in dims):
            ctx.unsupported("the normalised dims must be static")
        n = int(np.prod(dims, dtype=np.int64))
        if n >= 1 << MAX_NORM_BITS:
            ctx.unsupported(f"normalises {n} elements; at most {(1 << MAX_NORM_BITS) - 1} keep the sums exact")
        gamma = np.asarray(scale.value, dtype=np.float64)
        beta = np.zeros(1) if bias is None else np.asarray(bias.value, dtype=np.float64)
        gamma_frac = frac_for_range(float(np.max(np.abs(gamma))) if gamma.size else 0.0, GAMMA_BITS)
        while beta.size and float(np.max(np.abs(beta))) * 2.0 ** (Z_FRAC + gamma_frac) >= BETA_LIMIT:
            gamma_frac -= 1
        out_frac = ctx.out_frac()
        attrs = {"n_axes": rank - axis, "gamma_frac": gamma_frac, "out_frac": out_frac,
                 "eps_q": layer_norm_eps(float(ctx.attr("epsilon", 1e-5)), n, x.frac)}
        consts = {"gamma": quantize(gamma, gamma_frac, GAMMA_BITS), "beta": quantize(beta, Z_FRAC + gamma_frac, 63)}
        return Lowering(out_fracs=[out_frac] + [None] * (len(ctx.output_names) - 1), attrs=attrs, consts=consts,
                        absorbed={i for i in (1, 2) if i < len(ctx.inputs) and ctx.inputs[i] is not None})

    @staticmethod
    def run(inputs, attrs, consts):
        return [layer_norm(inputs[0], attrs["n_axes"], consts["gamma"], attrs["gamma_frac"], consts["beta"],
                           attrs["eps_q"], attrs["out_frac"])]
