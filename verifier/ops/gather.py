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
        """run for data of this shape (interpreter replays): indices that are, in `fixed`, the same on every run are
        checked and made non-negative once (None for indices run refuses); others are taken at run time."""
        if shapes[0] is None or not len(shapes[0]):
            return None
        axis = attrs["axis"] % len(shapes[0])
        if not fixed or 1 not in fixed:
            return _gather_at_run_time(axis, attrs, consts)
        indices = fixed[1]
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


def _gather_at_run_time(axis: int, attrs: dict, consts: dict):
    """Gather of indices known only at run time (token ids): np.take, which takes negative indices as Gather does and
    raises IndexError for one outside the axis; run then reports it in Gather's words."""

    def gathered(inputs):
        try:
            return [np.take(inputs[0], inputs[1], axis=axis)]
        except IndexError:
            return Gather.run(inputs, attrs, consts)

    return gathered


def _positions(indices: np.ndarray, size: int) -> np.ndarray:
    """Gather's indices along an axis of `size`, made non-negative; IndexError for one outside [-size, size)."""
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise IndexError(f"Gather index outside [-{size}, {size})")
    return np.where(indices < 0, indices + size, indices)
