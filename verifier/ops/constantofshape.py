import numpy as np

from verifier.fixedpoint import quantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import weight_frac
from verifier.ops._infinity import finite_part


class ConstantOfShape:
    """A tensor of the run-time shape filled with one value: a float value is quantized at its own 16-bit
    frac (+-inf saturates to +-qmax, verifier/ops/_infinity.py); an integer value stays a plain integer.
    (Folded at compile time when the shape is constant.)"""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        value = ctx.attr("value")
        value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
        if value.dtype.kind == "f":
            if np.isnan(value).any():
                ctx.unsupported("a NaN fill value (fixed point has no NaN)")
            frac = weight_frac(finite_part(value))  # +-inf (a mask) saturates to +-qmax
            return Lowering(out_fracs=[frac], attrs={"value": int(quantize(value, frac)[0])})
        return Lowering(out_fracs=[None], attrs={"value": int(value[0])})

    @staticmethod
    def run(inputs, attrs, consts):
        shape = [int(d) for d in inputs[0].reshape(-1)]
        return [np.full(shape, attrs["value"], dtype=np.int64)]

    @staticmethod
    def output_size(inputs, attrs, consts):
        dims = [int(d) for d in inputs[0].reshape(-1)]
        if any(d < 0 for d in dims):
            raise ValueError(f"ConstantOfShape: negative dim in {dims}")
        size = 1
        for d in dims:  # Python ints: a hostile shape cannot wrap around
            size *= d
        return size
