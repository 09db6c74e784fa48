"""Lowering shared by the elementwise functions of one activation (Sigmoid, Tanh, Erf, ...): a lookup
table over every representable input, built and correctly rounded at compile time, frozen into the
program bytes; the run is one clip and one gather (docs/fixed-point-nonlinear.md, "Tables")."""

from verifier.nonlinear.tables import apply_table, build_table, choose_out_frac
from verifier.ops import CompileContext, Lowering


def lower_table(ctx: CompileContext, fn) -> Lowering:
    """Table of fn(x, m) (m: numpy or mpmath namespace) for input 0; other inputs must be absorbed constants."""
    x = ctx.inputs[0]
    if x.frac is None:
        ctx.unsupported("needs a fixed-point (float) input, got a plain integer tensor")
    calibrated = ctx.ranges[0] if ctx.ranges else None
    out_frac = choose_out_frac(fn, x.frac, calibrated)
    lo, table = build_table(fn, x.frac, out_frac)
    absorbed = {i for i in range(1, len(ctx.inputs)) if ctx.inputs[i] is not None}
    return Lowering(out_fracs=[out_frac], attrs={"lo": lo}, consts={"table": table}, absorbed=absorbed)


def run_table(inputs, attrs, consts):
    return [apply_table(inputs[0], attrs["lo"], consts["table"])]



class TableFunction:
    """An op that is one table of `function(x, m)` (the docstring of each subclass names f): the table of
    lower_table, y = T[clip(q, lo, lo + len(T) - 1) - lo], at most 0.5 output step from f of the input's
    exact value; f_out from the largest |f| over the representable inputs, tightened to the calibrated
    output range."""

    function = None

    @classmethod
    def compile(cls, ctx: CompileContext) -> Lowering:
        return lower_table(ctx, cls.function)

    run = staticmethod(run_table)
