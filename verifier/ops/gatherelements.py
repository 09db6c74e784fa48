import numpy as np

from verifier.ops.gather import Gather


class GatherElements:
    """y[i][j]... = data[... index[i][j]... at `axis` ...] (torch.gather), negative indices counting from the
    end; an index outside the axis is a run error. Values and frac unchanged."""

    compile = staticmethod(Gather.compile)  # (integer indices, the axis)

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
