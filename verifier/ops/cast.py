import numpy as np
from onnx import helper

from verifier.fixedpoint import ACT_BITS, round_shift, saturate, with_sign_of
from verifier.ops import CompileContext, Lowering


class Cast:
    """Change of type, on integers:
    fixed -> float: unchanged (same q, same frac); fixed -> bool: q != 0 (any nonzero real is true);
    fixed -> other integer type: the real value truncated toward zero, sign(q) * (|q| >> frac)
    (q << -frac for frac < 0); integer -> float: q = saturate(round_shift(v, -fy)) at the output's
    calibrated frac fy (0 without a range); integer -> integer: unchanged (bool: v != 0)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        to = np.dtype(helper.tensor_dtype_to_np_dtype(int(ctx.attr("to"))))
        source = ctx.inputs[0]
        if to.kind == "f":
            if source.frac is not None:
                return Lowering(out_fracs=[source.frac], attrs={"mode": "same"})
            out_frac = ctx.out_frac() if ctx.ranges and ctx.ranges[0] is not None else 0
            return Lowering(out_fracs=[out_frac], attrs={"mode": "to_fixed", "frac": out_frac})
        if to.kind not in "iub":
            ctx.unsupported(f"cast to {to}")
        if source.frac is not None and to.kind != "b":
            return Lowering(out_fracs=[None], attrs={"mode": "truncate", "frac": source.frac})
        return Lowering(out_fracs=[None], attrs={"mode": "bool" if to.kind == "b" else "same"})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        mode = attrs["mode"]
        if mode == "same":
            return [x]
        if mode == "bool":
            return [(x != 0).astype(np.int64)]
        if mode == "to_fixed":
            return [saturate(round_shift(x, -attrs["frac"]), ACT_BITS)]
        frac = attrs["frac"]
        if frac <= 0:
            return [x << -frac]
        magnitude = np.abs(x) >> frac
        return [with_sign_of(x, magnitude)]
