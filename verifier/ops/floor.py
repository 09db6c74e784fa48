from verifier.ops._rounding import Rounding


class Floor(Rounding):
    """y = floor(x), exactly on q (_rounding.py); frac unchanged."""

    mode = "floor"
