import numpy as np

from verifier.fixedpoint import ACT_BITS, frac_for_range, qmax, quantize, round_shift, saturate
from verifier.nonlinear.exp_log import exponent_multiplier, pow_positive
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, multiplier_for
from verifier.ops._ranges import requantized

POWER_BITS = 46  # x (16 bits) * power stays below 2**62


class LRN:
    """Local response normalisation across channels (axis 1) (docs/fixed-point-nonlinear.md, "LRN"):
    S = sum of q*q over the channel window [c - floor((size-1)/2), c + ceil((size-1)/2)] (exact, at 2**-2f);
    T = bias_q + round(S * m / 2**s), at 2**-f_T (m / 2**s ~= alpha/size * 2**(f_T - 2f), T < 2**60);
    P = pow_positive(T, f_T, -beta) at 2**-f_P (log2 and exp2 of verifier/nonlinear/exp_log.py);
    y = round_half_away(q * P / 2**(f + f_P - f_out)), saturated. Needs bias > 0."""

    range_bits = staticmethod(requantized)  # (saturated at 16 bits: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        if x.frac is None:
            ctx.unsupported("needs a fixed-point (float) input, got a plain integer tensor")
        size = int(ctx.attr("size"))
        alpha, beta, bias = (float(ctx.attr(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
        if bias <= 0.0 or size < 1:
            ctx.unsupported("needs bias > 0 and size >= 1")
        f = x.frac
        t_max = bias + alpha * (qmax(ACT_BITS) * 2.0**-f) ** 2
        t_frac = 59 - int(np.ceil(np.log2(t_max)))
        multiplier, shift = multiplier_for(alpha / size * 2.0 ** (t_frac - 2 * f), 31 - size.bit_length())
        p_m, p_shift = exponent_multiplier(-beta)
        power_frac = frac_for_range(max(bias**-beta, 1.0), POWER_BITS)
        out_frac = ctx.out_frac()
        attrs = {"size": size, "multiplier": multiplier, "shift": shift, "t_frac": t_frac,
                 "bias_q": int(quantize(np.array([bias]), t_frac, 63)[0]), "p_m": p_m, "p_shift": p_shift,
                 "power_frac": power_frac, "in_frac": f, "out_frac": out_frac}
        return Lowering(out_fracs=[out_frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        (x,) = inputs
        compiled = None if kernel_path() == "reference" else _compiled(x, attrs)
        if compiled is not None:
            return [compiled]
        size = attrs["size"]
        pad = [(0, 0)] * x.ndim
        pad[1] = ((size - 1) // 2 + 1, size // 2)  # one extra leading zero for the cumulative-sum difference
        cumulative = np.cumsum(np.pad(x * x, pad), axis=1)
        window = np.take(cumulative, np.arange(size, size + x.shape[1]), axis=1) - np.take(
            cumulative, np.arange(0, x.shape[1]), axis=1)
        t = attrs["bias_q"] + round_shift(window * np.int64(attrs["multiplier"]), attrs["shift"])
        power = pow_positive(t, attrs["t_frac"], attrs["p_m"], attrs["p_shift"], attrs["power_frac"])
        return [saturate(round_shift(x * power, attrs["in_frac"] + attrs["power_frac"] - attrs["out_frac"]))]


def _compiled(x, attrs):
    """The fast path: kernels.loops.lrn, the same integers in one pass (the window sums directly, not as
    differences of a cumulative sum: equal in int64), or None where the loop declines (shifts outside its range,
    a `t` past INT64_SAFE) and the numpy form runs."""
    from verifier.kernels import loops
    from verifier.nonlinear.exp_log import spec_constants

    if x.ndim < 2 or x.size == 0:
        return None
    rows = np.ascontiguousarray(x, dtype=np.int64).reshape(x.shape[0], x.shape[1], -1)
    constants = spec_constants()
    tables = (constants["log2"], constants["exp2_hi"], constants["exp2_mid"], constants["exp2_lo"])
    out = np.empty(rows.shape, dtype=np.int64)
    out_shift = attrs["in_frac"] + attrs["power_frac"] - attrs["out_frac"]
    if not loops.lrn(rows, attrs["size"], attrs["multiplier"], attrs["shift"], attrs["bias_q"], attrs["t_frac"],
                     attrs["p_m"], attrs["p_shift"], attrs["power_frac"], out_shift, qmax(ACT_BITS), tables,
                     np.empty(rows.shape[2], dtype=np.int64), out):
        return None
    return out.reshape(x.shape)


def _output_size(inputs, attrs, consts) -> int:
    """The channel-padded squares (C + size channels) the run builds, or the output."""
    x = inputs[0].shape
    if len(x) < 2:
        raise ValueError(f"LRN takes (N, C, ...) inputs, got shape {tuple(x)}")
    size = 1
    for d in x:
        size *= int(d)
    return size // max(int(x[1]), 1) * (int(x[1]) + int(attrs["size"]) + 1)


LRN.output_size = staticmethod(_output_size)
LRN.output_size_from_shapes = True
