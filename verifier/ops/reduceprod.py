import numpy as np

from verifier.fixedpoint import requantize, round_shift
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import grouped, reduce_attrs

PRODUCT_LIMIT = 1 << 47  # |running product| * |q| < 2**62 for 16-bit q


class ReduceProd:
    """Product over the axes. Fixed-point: the elements of each reduced group taken in index order,
    p <- round_shift(p * q, fx) (the running product at the input's frac, clamped to +-2**47 so the next
    multiply stays in int64), then y = requantize(p, fx, fy) at the calibrated output frac: 0.5 step at fx
    per multiply, carried by the later factors. Plain integers: the exact int64 product (wrapping, as
    onnxruntime's int64)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs = reduce_attrs(ctx)
        x = ctx.inputs[0]
        if x.frac is None:
            return Lowering(out_fracs=[None], attrs=attrs, absorbed={1})
        attrs.update(in_frac=x.frac, out_frac=ctx.out_frac())
        return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        rows, shape = grouped(inputs[0], attrs)
        if "in_frac" not in attrs:
            return [np.prod(rows, axis=-1).reshape(shape)]
        frac = attrs["in_frac"]
        if rows.shape[-1] == 0:  # the empty product, 1
            return [requantize(np.ones(rows.shape[:-1], dtype=np.int64), 0, attrs["out_frac"]).reshape(shape)]
        product = rows[..., 0]
        for k in range(1, rows.shape[-1]):
            product = np.clip(round_shift(product * rows[..., k], frac), -PRODUCT_LIMIT, PRODUCT_LIMIT)
        return [requantize(product, frac, attrs["out_frac"]).reshape(shape)]
