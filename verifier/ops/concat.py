import numpy as np

from verifier.fixedpoint import ACT_BITS, requantize
from verifier.ops import CompileContext, Lowering


class Concat:
    """Join along `axis`. Fixed-point inputs move to the smallest input frac f = min(f_i) (requantize:
    round half away from zero, saturate; exact for inputs already at f); plain integer tensors join as is."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        fracs = [o.frac for o in ctx.inputs]
        axis = int(ctx.attr("axis"))
        if all(f is None for f in fracs):
            return Lowering(out_fracs=[None], attrs={"axis": axis})
        if any(f is None for f in fracs):
            ctx.unsupported("joins plain integer and fixed-point tensors")
        out_frac = min(fracs)
        return Lowering(out_fracs=[out_frac], attrs={"axis": axis, "fracs": fracs, "out_frac": out_frac})

    joins_in_place = True  # inputs may be computed straight into their slices of the output (interpreter.py)
    reads_narrow = True  # run takes int16 inputs (replays.py): it copies them, or requantizes them in int64

    @staticmethod
    def range_bits(attrs, inputs) -> int:
        """The widest input's width (_ranges.py): its values are its inputs', those moved to another frac
        saturated at 16 bits; 0 unless every input has one."""
        fracs = attrs.get("fracs", [attrs.get("out_frac")] * len(inputs))
        if len(fracs) != len(inputs):
            return 0
        widths = [bits if frac == attrs.get("out_frac") else ACT_BITS for frac, bits in zip(fracs, inputs)]
        return max(widths) if widths and all(widths) else 0

    @staticmethod
    def copies_only(attrs) -> bool:
        """Whether run only copies its inputs (no input is moved to another frac)."""
        return all(f == attrs["out_frac"] for f in attrs.get("fracs", ()))

    @staticmethod
    def run(inputs, attrs, consts):
        if "fracs" in attrs:
            inputs = [x if f == attrs["out_frac"] else requantize(x, f, attrs["out_frac"], ACT_BITS)
                      for x, f in zip(inputs, attrs["fracs"])]
        return [np.concatenate(inputs, axis=attrs["axis"])]
