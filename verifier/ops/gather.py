import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._ranges import of_first_input


class Gather:
    """y = take(data, indices, axis), negative indices counting from the end; an index outside the axis
    is a run error. Output frac = data frac (row lookups of embeddings, shape arithmetic)."""

    range_bits = staticmethod(of_first_input)  # (its values are its data input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[1].frac is not None:
            ctx.unsupported("indices must be an integer tensor")
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs={"axis": int(ctx.attr("axis", 0))})

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices = inputs
        axis = attrs["axis"] % data.ndim
        positions = _positions(indices, data.shape[axis])
        if indices.ndim == 0:  # one index (a row of a stacked tensor): the same values as a view, no copy
            return [data[(slice(None),) * axis + (int(positions),)]]
        return [np.take(data, positions, axis=axis)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for data of this shape and indices that are, in `fixed`, the same on every run (interpreter replays):
        the indices checked and made non-negative once; None otherwise (or for indices run refuses)."""
        if not fixed or 1 not in fixed or shapes[0] is None or not len(shapes[0]):
            return None
        indices, axis = fixed[1], attrs["axis"] % len(shapes[0])
        try:
            positions = _positions(indices, shapes[0][axis])
        except IndexError:
            return None
        if indices.ndim == 0:
            picked = (slice(None),) * axis + (int(positions),)
            return lambda inputs: [inputs[0][picked]]
        return lambda inputs: [np.take(inputs[0], positions, axis=axis)]

    output_size_from_shapes = True  # (output_size reads the inputs' shapes alone)

    @staticmethod
    def output_size(inputs, attrs, consts):
        data, indices = inputs
        return int(indices.size) * (int(data.size) // max(int(data.shape[attrs["axis"] % data.ndim]), 1))


def _positions(indices: np.ndarray, size: int) -> np.ndarray:
    """Gather's indices along an axis of `size`, made non-negative; IndexError for one outside [-size, size)."""
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise IndexError(f"Gather index outside [-{size}, {size})")
    return np.where(indices < 0, indices + size, indices)
