from verifier.ops import CompileContext, Lowering
from verifier.ops._scatter import checked_indices, combine, finish, lower_scatter, operands


class ScatterND:
    """y = data with the slices data[indices[i]] replaced by (reduction none) or combined with (add, max,
    min) updates[i], in order; indices index the first k dims (negative from the end, outside: a run
    error). Scales: _scatter.py (exact moves and sums at the common frac, one requantization)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_scatter(ctx)

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices, updates = operands(inputs, attrs, consts)
        k = indices.shape[-1] if indices.ndim else 0
        if indices.ndim == 0 or k > data.ndim or updates.shape != indices.shape[:-1] + data.shape[k:]:
            raise ValueError(f"ScatterND: indices {indices.shape} and updates {updates.shape} do not fit data "
                             f"{data.shape}")
        places = checked_indices(indices.reshape(-1, k), data.shape[:k], "ScatterND")
        combine(data, tuple(places.T), updates.reshape((-1,) + data.shape[k:]), attrs["reduction"])
        return [finish(data, attrs)]
