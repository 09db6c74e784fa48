import numpy as np

from verifier.fixedpoint import with_sign_of
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import align_operands, aligned


class OneHot:
    """y = values[1] where the new `axis` equals the index (negative indices count from depth; outside
    [-depth, depth) none does), values[0] elsewhere. Fixed-point (float) indices and depth are truncated
    toward zero, as a cast to int64; fixed-point values keep their frac (constants quantized at their own),
    integers stay exact. The output's size comes from depth and is metered before anything is allocated."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs, consts, absorbed, common = align_operands(ctx, [2])
        attrs["index_frac"] = ctx.inputs[0].frac or 0
        attrs["axis"] = int(ctx.attr("axis", -1))
        depth = ctx.inputs[1]
        attrs["depth_frac"] = 0 if depth.frac is None else depth.frac
        return Lowering(out_fracs=[common], attrs=attrs, consts=consts, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        indices = with_sign_of(inputs[0], np.abs(inputs[0]) >> attrs["index_frac"])  # (truncated toward 0)
        depth = _depth(inputs, attrs)
        values = np.asarray(aligned(inputs, attrs, consts, 2)).reshape(-1)
        if values.size != 2:
            raise ValueError(f"OneHot: values must hold [off, on], got {values.size} values")
        axis = attrs["axis"] % (indices.ndim + 1)
        wrapped = np.where(indices < 0, indices + depth, indices)
        positions = np.arange(depth).reshape((1,) * axis + (depth,) + (1,) * (indices.ndim - axis))
        hot = np.expand_dims(wrapped, axis) == positions
        return [np.where(hot, values[1], values[0])]

    @staticmethod
    def output_size(inputs, attrs, consts):
        return int(inputs[0].size) * _depth(inputs, attrs)


def _depth(inputs, attrs) -> int:
    depth = np.asarray(inputs[1]).reshape(-1)
    if depth.size != 1 or int(depth[0]) >> attrs["depth_frac"] < 1:
        raise ValueError(f"OneHot: depth must be one positive value, got {depth.tolist()}")
    return int(depth[0]) >> attrs["depth_frac"]
