import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._scatter import checked_indices, combine, finish, lower_scatter, operands


class ScatterElements:
    """y = data with y[..., indices[i, j, ...] at `axis`, ...] replaced by (reduction none) or combined with
    (add, max, min) updates[i, j, ...] (torch's scatter / scatter_add); negative indices from the end,
    outside: a run error. Scales: _scatter.py (exact moves and sums at the common frac, one requantization)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        lowering = lower_scatter(ctx)
        lowering.attrs["axis"] = int(ctx.attr("axis", 0))
        return lowering

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices, updates = operands(inputs, attrs, consts)
        if indices.shape != updates.shape or indices.ndim != data.ndim or data.ndim == 0:
            raise ValueError(f"ScatterElements: indices {indices.shape} and updates {updates.shape} do not fit "
                             f"data {data.shape}")
        axis = attrs["axis"] % data.ndim
        places = list(np.indices(indices.shape, sparse=True))
        places[axis] = checked_indices(indices, data.shape[axis], "ScatterElements")
        combine(data, tuple(places), updates, attrs["reduction"])
        return [finish(data, attrs)]
