from verifier.ops._rounding import Rounding


class Ceil(Rounding):
    """y = ceil(x), exactly on q (_rounding.py); frac unchanged."""

    mode = "ceil"
