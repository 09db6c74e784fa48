"""Helpers several ops share. Integer helpers here only compose verifier.fixedpoint; nothing new rounds."""

import numpy as np

from verifier.fixedpoint import ACT_BITS, WEIGHT_BITS, frac_for_range, quantize, requantize, round_shift

MAX_SHIFT = 62


def weight_frac(value: np.ndarray, bits: int = WEIGHT_BITS) -> int:
    """The frac a constant is quantized at: as many fraction bits as fit `bits` for its largest magnitude."""
    value = np.asarray(value, dtype=np.float64)
    return frac_for_range(float(np.max(np.abs(value))) if value.size else 0.0, bits)


def quantize_const(value: np.ndarray, frac: int, bits: int = 62) -> np.ndarray:
    """A compile-time constant at a given frac (wide: biases live at accumulator scale)."""
    return quantize(value, frac, bits)


def align(q: np.ndarray, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact move to a larger frac (a left shift); never rounds."""
    assert to_frac >= from_frac
    return round_shift(q, from_frac - to_frac)


def to_output(acc: np.ndarray, acc_frac: int, out_frac: int) -> np.ndarray:
    """The one way a wide result becomes an activation: round half away from zero, saturate to 16 bits."""
    return requantize(acc, acc_frac, out_frac, ACT_BITS)


def multiplier_for(real: float, target_bits: int = 30) -> tuple[int, int]:
    """(m, s) with m / 2**s ~= real, |m| < 2**target_bits: scaling by a float constant with integers."""
    if real == 0.0:
        return 0, 0
    shift = int(np.floor(target_bits - 1 - np.log2(abs(real))))
    shift = max(min(shift, MAX_SHIFT), -MAX_SHIFT)
    m = int(quantize(np.array([real]), shift, 63)[0]) if shift >= 0 else int(round(real / 2.0**-shift))
    return m, shift


def broadcast_shape(*shapes):
    return np.broadcast_shapes(*shapes)


def size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))
