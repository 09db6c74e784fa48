import numpy as np

from verifier.ops._reduce import ExactReduction


class ReduceMin(ExactReduction):
    """y = min over the axes; frac unchanged, exact."""

    numpy_fn = staticmethod(np.min)
