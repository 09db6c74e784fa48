import numpy as np

from verifier.fixedpoint import rounding_divide
from verifier.ops import CompileContext, Lowering
from verifier.ops._reduce import axes_of, reduce_attrs
from verifier.ops._ranges import of_first_input


class ReduceMean:
    """y = rounding_divide(exact int64 sum over the axes, number of elements reduced); frac unchanged."""

    range_bits = staticmethod(of_first_input)  # (rounded averages of its input: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=reduce_attrs(ctx), absorbed={1})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        axes = axes_of(x, attrs)
        if axes is None:
            return [x]
        count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        total = x.sum(axis=axes, keepdims=bool(attrs["keepdims"]))
        return [rounding_divide(total, max(count, 1))]
