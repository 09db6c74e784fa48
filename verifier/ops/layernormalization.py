import numpy as np

from verifier.fixedpoint import ACT_BITS, qmax, round_shift
from verifier.nonlinear.roots import MAX_NORM_BITS, Z_FRAC, inv_sqrt_bits, layer_norm, layer_norm_eps
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, or_run
from verifier.ops._norm import gamma_frac_for, quantize_beta, quantize_gamma
from verifier.ops._ranges import requantized

MAX_BETA_SHIFT = 46  # a 16-bit run-time bias moved to the product's frac stays below 2**62


class LayerNormalization:
    """Normalise over the dims from `axis` on (N elements), scale and shift (docs/fixed-point-nonlinear.md,
    "Layer normalisation"): S = sum(q); c = N*q - S; V = N*sum(q*q) - S*S (both exact);
    D = max(V + eps_q, 1) with eps_q = round(epsilon * N**2 * 2**(2 f_in));
    z = c / sqrt(D) at 2**-24 via an even normalising shift, sqrt_round and one rounded reciprocal;
    y = round_half_away((z * gamma_q + beta_q) / 2**(24 + f_gamma - f_out)), saturated, where gamma_q is the
    scale at 2**-f_gamma and beta_q the bias at 2**-(24 + f_gamma). A constant scale is quantized at 20 bits
    and a constant bias at the product's frac; a run-time scale/bias comes at its own 16-bit frac (the bias is
    moved to 2**-(24 + f_gamma) by round_shift). Error: at most 0.51 output step from the exact result on the
    quantized scale and bias.
    Optional outputs Mean = rounding_divide(S * 2**(f_mean - f_in), N) and InvStdDev = 1/sqrt(var + eps) from the
    same D, at their calibrated fracs, saturated (normalised dims kept as 1)."""

    range_bits = staticmethod(requantized)  # (saturated at 16 bits: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, scale = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if x.frac is None or scale.frac is None or (bias is not None and bias.frac is None):
            ctx.unsupported("needs fixed-point (float) input, scale and bias")
        if x.shape is None:
            ctx.unsupported("needs the input's rank")
        rank = len(x.shape)
        axis = int(ctx.attr("axis", -1)) % rank
        dims = x.shape[axis:]
        if any(d is None for d in dims):
            ctx.unsupported("the normalised dims must be static")
        n = int(np.prod(dims, dtype=np.int64))
        if n == 0 or n >= 1 << MAX_NORM_BITS:
            ctx.unsupported(f"normalises {n} elements; 1 to {(1 << MAX_NORM_BITS) - 1} keep the sums exact")
        consts, absorbed = {}, set()
        if scale.is_const:
            gamma = np.asarray(scale.value, dtype=np.float64)
            beta = np.asarray(bias.value, dtype=np.float64) if bias is not None and bias.is_const else None
            gamma_frac = gamma_frac_for(gamma, beta)
            consts["gamma"] = quantize_gamma(gamma, gamma_frac)
            absorbed.add(1)
        else:
            gamma_frac = scale.frac
        attrs = {"n_axes": rank - axis, "gamma_frac": gamma_frac,
                 "eps_q": layer_norm_eps(float(ctx.attr("epsilon", 1e-5)), n, x.frac)}
        if bias is None or bias.is_const:
            value = np.zeros(1) if bias is None else np.asarray(bias.value, dtype=np.float64)
            consts["beta"] = quantize_beta(value, gamma_frac)
            absorbed |= {2} if bias is not None else set()
        else:
            attrs["beta_shift"] = Z_FRAC + gamma_frac - bias.frac
            if attrs["beta_shift"] > MAX_BETA_SHIFT:
                ctx.unsupported("bias and scale scales too far apart")
        out_fracs = [ctx.out_frac(i) if name else None for i, name in enumerate(ctx.output_names)]
        attrs["out_frac"] = out_fracs[0]
        if any(f is not None for f in out_fracs[1:]):
            stats = (out_fracs + [None, None])[1:3]
            attrs["stats_fracs"] = [x.frac] + [0 if f is None else f for f in stats]
        return Lowering(out_fracs=out_fracs, attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        x, scale, bias = (list(inputs) + [None, None])[:3]
        gamma = consts["gamma"] if "gamma" in consts else scale
        beta = consts["beta"] if "beta" in consts else round_shift(bias, -attrs["beta_shift"])
        stats = attrs.get("stats_fracs")
        compiled = None if stats or kernel_path() == "reference" else _compiled(x, gamma, beta, attrs)
        if compiled is not None:
            return [compiled]
        result = layer_norm(x, attrs["n_axes"], gamma, attrs["gamma_frac"], beta, attrs["eps_q"], attrs["out_frac"],
                            stats_fracs=tuple(stats) if stats else None)
        return list(result) if stats else [result]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run's fast path for an input of these shapes (interpreter replays): the compiled loop with its scale and
        bias laid out once, where they are constants; else None."""
        if "gamma" not in consts or "beta" not in consts or attrs.get("stats_fracs") or shapes[0] is None:
            return None
        return or_run(_rows_kernel(tuple(shapes[0]), consts["gamma"], consts["beta"], attrs), LayerNormalization,
                      attrs, consts)


def _compiled(x, gamma, beta, attrs):
    """The fast path: kernels.loops.layer_norm over the rows (the same integers as roots.layer_norm), or None
    where it does not apply (statistics outputs, scale / bias wider than the normalised dims, shifts it
    leaves to the numpy form)."""
    normalise = _rows_kernel(x.shape, gamma, beta, attrs)
    return None if normalise is None else normalise(x)


def _rows_kernel(x_shape: tuple, gamma, beta, attrs):
    """_compiled for inputs of x_shape as a function of x (None where it does not apply), its scale and bias laid
    out along the normalised dims once."""
    from verifier.kernels import loops

    n_axes, out_shift = attrs["n_axes"], Z_FRAC + attrs["gamma_frac"] - attrs["out_frac"]
    if not 1 <= out_shift <= 62 or np.ndim(gamma) > n_axes or np.ndim(beta) > n_axes or len(x_shape) < n_axes:
        return None
    normalised = tuple(x_shape[len(x_shape) - n_axes:])
    n = int(np.prod(normalised, dtype=np.int64))
    if n == 0 or 0 in x_shape:
        return None
    gamma, beta = (np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.int64), normalised)).reshape(-1)
                   for v in (gamma, beta))
    arguments = (attrs["eps_q"], inv_sqrt_bits(n), Z_FRAC, out_shift, qmax(ACT_BITS))

    def normalise(x):
        rows = np.ascontiguousarray(x, dtype=np.int64).reshape(-1, n)
        out = np.empty(rows.shape, dtype=np.int64)
        return out.reshape(x.shape) if loops.layer_norm(rows, gamma, beta, *arguments, out) else None

    return normalise
