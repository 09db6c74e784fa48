import numpy as np

from verifier.ops._elementwise import Logical


class Or(Logical):
    """Boolean logical_or of two plain integer (0/1) tensors, numpy broadcasting; a plain 0/1 int64 result."""

    numpy_fn = staticmethod(np.logical_or)
