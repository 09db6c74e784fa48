import numpy as np

from verifier.ops.argmax import ArgMax


class ArgMin(ArgMax):
    """Index of the smallest q along `axis` (first one on ties, or the last with select_last_index=1), as a
    plain int64 tensor; keepdims as ONNX."""

    choose = staticmethod(np.argmin)
