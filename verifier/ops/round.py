from verifier.ops._rounding import Rounding


class Round(Rounding):
    """y = x rounded half to even (ONNX Round), exactly on q (_rounding.py); frac unchanged."""

    mode = "half_even"
