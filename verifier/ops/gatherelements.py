import numpy as np

from verifier.ops import CompileContext, Lowering


class GatherElements:
    """y[i][j]... = data[... index[i][j]... at `axis` ...] (torch.gather), negative indices counting from the
    end; an index outside the axis is a run error. Values and frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[1].frac is not None:
            ctx.unsupported("indices must be an integer tensor")
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axis": int(ctx.attr("axis", 0))})

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices = inputs
        if data.ndim != indices.ndim or data.ndim == 0:
            raise ValueError(f"GatherElements: data {data.shape} and indices {indices.shape} differ in rank")
        axis = attrs["axis"] % data.ndim
        size = data.shape[axis]
        if indices.size and (indices.min() < -size or indices.max() >= size):
            raise IndexError(f"GatherElements index outside [-{size}, {size})")
        return [np.take_along_axis(data, np.where(indices < 0, indices + size, indices), axis=axis)]
