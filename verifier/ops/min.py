import numpy as np

from verifier.ops._elementwise import Extremum


class Min(Extremum):
    """Elementwise minimum of all operands (numpy broadcasting), compared exactly at the common frac
    c = max(f_i), then requantized to the smallest run-time operand frac (exact when all fracs are equal)."""

    numpy_fn = staticmethod(np.minimum)
