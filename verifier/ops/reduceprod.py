import numpy as np

from verifier.fixedpoint import requantize, round_shift
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import axes_of, reduce_attrs

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
        x = inputs[0]
        axes = axes_of(x, attrs)
        axes = () if axes is None else axes
        keepdims = bool(attrs["keepdims"])
        if "in_frac" not in attrs:
            return [np.prod(x, axis=axes, keepdims=keepdims) if axes else x.copy()]
        kept = [a for a in range(x.ndim) if a not in axes]
        rows = np.transpose(x, kept + list(axes)).reshape([x.shape[a] for a in kept] + [-1])
        product = np.full(rows.shape[:-1], 1 << attrs["in_frac"], dtype=np.int64) if attrs["in_frac"] >= 0 else \
            np.ones(rows.shape[:-1], dtype=np.int64)
        for k in range(rows.shape[-1]):
            product = np.clip(round_shift(product * rows[..., k], attrs["in_frac"]), -PRODUCT_LIMIT, PRODUCT_LIMIT)
        y = requantize(product, attrs["in_frac"], attrs["out_frac"])
        if keepdims:
            return [y.reshape([1 if a in axes else d for a, d in enumerate(x.shape)])]
        return [y]
