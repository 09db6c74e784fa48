import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class Tile:
    """Repeat x `repeats[i]` times along each axis (np.tile); values and frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        repeats = const_ints(ctx, 1, "repeats")
        if repeats is None:
            return Lowering(out_fracs=[ctx.inputs[0].frac])
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"repeats": repeats}, absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        return [np.tile(inputs[0], _repeats(inputs, attrs))]

    @staticmethod
    def output_size(inputs, attrs, consts):
        repeats = _repeats(inputs, attrs)
        if any(r < 0 for r in repeats):
            raise ValueError("Tile: negative repeats")
        return int(np.prod(inputs[0].shape, dtype=object)) * int(np.prod(repeats, dtype=object))


def _repeats(inputs, attrs):
    return attrs["repeats"] if "repeats" in attrs else [int(r) for r in inputs[1].reshape(-1)]
