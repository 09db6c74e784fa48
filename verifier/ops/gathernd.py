import numpy as np

from verifier.ops import CompileContext, Lowering


class GatherND:
    """Slices of data picked by index tuples: the last axis of indices (k long) indexes data's dims
    batch_dims .. batch_dims + k - 1, per batch entry (the first batch_dims dims, shared by both); negative
    indices count from the end, outside is a run error. Values and frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[1].frac is not None:
            ctx.unsupported("indices must be an integer tensor")
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"batch_dims": int(ctx.attr("batch_dims", 0))})

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices = inputs
        b = attrs["batch_dims"]
        k = indices.shape[-1] if indices.ndim else 0
        if indices.ndim < b + 1 or data.ndim < b + k or data.shape[:b] != indices.shape[:b]:
            raise ValueError(f"GatherND: indices {indices.shape} do not fit data {data.shape} with batch_dims={b}")
        sizes = np.asarray(data.shape[b:b + k], dtype=np.int64)
        if indices.size and (np.any(indices < -sizes) or np.any(indices >= sizes)):
            raise IndexError(f"GatherND index outside the data's dims {tuple(sizes.tolist())}")
        indices = np.where(indices < 0, indices + sizes, indices)
        batches = data.reshape((-1,) + data.shape[b:])
        picks = indices.reshape((batches.shape[0], -1, k))
        gathered = np.stack([rows[tuple(pick.T)] for rows, pick in zip(batches, picks)])
        return [gathered.reshape(indices.shape[:-1] + data.shape[b + k:])]

    output_size_from_shapes = True  # (output_size reads the inputs' shapes alone)

    @staticmethod
    def output_size(inputs, attrs, consts):
        data, indices = inputs
        k = indices.shape[-1] if indices.ndim else 0
        return int(np.prod(indices.shape[:-1], dtype=np.int64)) * int(
            np.prod(data.shape[attrs["batch_dims"] + k:], dtype=np.int64))
