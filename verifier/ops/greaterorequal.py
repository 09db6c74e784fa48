import numpy as np

from verifier.ops._elementwise import Comparison


class GreaterOrEqual(Comparison):
    """y = (a >= b) as a plain 0/1 integer tensor, both operands compared exactly at the common frac
    max(fa, fb) (a float constant compares by its exact value: Comparison); numpy broadcasting."""

    numpy_fn = staticmethod(np.greater_equal)
    const_rounding = ("floor", "ceil")
