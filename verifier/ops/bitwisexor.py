import numpy as np

from verifier.ops._elementwise import Bitwise


class BitwiseXor(Bitwise):
    """y = xor of the bits of two plain integer tensors (numpy broadcasting), exact."""

    numpy_fn = staticmethod(np.bitwise_xor)
