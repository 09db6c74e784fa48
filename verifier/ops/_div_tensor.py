"""Div by a tensor computed at run time (called from Div): integer division rounded half away from zero,
docs/fixed-point-nonlinear.md "Division"."""

from verifier.nonlinear.roots import divide
from verifier.ops import CompileContext, Lowering

MAX_ALIGN_SHIFT = 46  # a 16-bit operand shifted by this stays below 2**62


def lower_div_by_tensor(ctx: CompileContext) -> Lowering:
    """y = round_half_away(a * 2**(f_out - f_a + f_b) / b) (the shift moves to b when negative), saturated;
    b = 0 gives +-qmax by the sign of a (0 / 0 = 0)."""
    a, b = ctx.inputs
    if a.frac is None or b.frac is None:
        ctx.unsupported("divides a fixed-point tensor by a plain integer one (or the reverse); cast it first")
    out_frac = ctx.out_frac()
    if abs(out_frac - a.frac + b.frac) > MAX_ALIGN_SHIFT:
        ctx.unsupported(f"operand scales too far apart (shift {out_frac - a.frac + b.frac})")
    return Lowering(out_fracs=[out_frac], attrs={"a_frac": a.frac, "b_frac": b.frac, "out_frac": out_frac})


def run_div_by_tensor(inputs, attrs, consts):
    a, b = inputs
    return [divide(a, attrs["a_frac"], b, attrs["b_frac"], attrs["out_frac"])]
