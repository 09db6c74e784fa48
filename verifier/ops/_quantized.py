"""Shared by QuantizeLinear and DequantizeLinear: a float32 scale as an exact integer mantissa and a power
of two, the integer ranges of the quantized types, and the per-axis layout of scales and zero points."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from verifier.fixedpoint import bit_length, round_half_even, with_sign_of
from verifier.ops import CompileContext

RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
          "uint4": (0, 15), "int4": (-8, 7), "int32": (-(1 << 31), (1 << 31) - 1)}
MANTISSA_BITS = 24  # a float32 scale is exactly M * 2**E with M < 2**24


def scale_parts(ctx: CompileContext, index: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(M, E) with scale = M * 2**E exactly, per element of the constant scale input."""
    scale = ctx.inputs[index]
    if not scale.is_const:
        ctx.unsupported("a scale computed at run time")
    value = np.asarray(scale.value, dtype=np.float32).astype(np.float64)
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        ctx.unsupported("a scale that is not a positive finite number")
    mantissa, exponent = np.frexp(value)
    return (np.ldexp(mantissa, MANTISSA_BITS).astype(np.int64), (exponent - MANTISSA_BITS).astype(np.int64))


def quantized_type(ctx: CompileContext, zero_point_index: int = 2) -> str:
    """The integer type of the quantized side: the zero point's, else output_dtype, else uint8."""
    zero_point = ctx.inputs[zero_point_index] if len(ctx.inputs) > zero_point_index else None
    if zero_point is not None and zero_point.is_const:
        name = np.asarray(zero_point.value).dtype.name
    elif ctx.attr("output_dtype"):
        from onnx import helper

        name = np.dtype(helper.tensor_dtype_to_np_dtype(int(ctx.attr("output_dtype")))).name
    else:
        name = "uint8"
    if name not in RANGES:
        ctx.unsupported(f"quantized type {name}")
    return name


def zero_point(ctx: CompileContext, index: int = 2) -> np.ndarray:
    operand = ctx.inputs[index] if len(ctx.inputs) > index else None
    if operand is None:
        return np.zeros(1, dtype=np.int64)
    if not operand.is_const:
        ctx.unsupported("a zero point computed at run time")
    return np.asarray(operand.value).astype(np.int64)


def per_axis(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A 1-D per-axis parameter shaped to broadcast along `axis` of a rank-`rank` tensor (scalars as is)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 1 or rank == 0:
        return values.reshape(())
    return values.reshape((-1,) + (1,) * (rank - 1 - axis % rank))


def check_layout(ctx: CompileContext) -> None:
    if int(ctx.attr("block_size", 0)):
        ctx.unsupported("blocked quantization (block_size)")


def float32_of_ratio(numerator: int, denominator: int) -> tuple[int, int]:
    """(M, k) with M * 2**-k the float32 nearest to numerator / denominator (both > 0; ties to even, as
    IEEE division rounds): M has 24 bits. Python ints, exact."""
    k = MANTISSA_BITS - (numerator.bit_length() - denominator.bit_length())
    while True:
        top, bottom = (numerator << k, denominator) if k >= 0 else (numerator, denominator << -k)
        mantissa = int(round_half_even(np.array(top, dtype=object), bottom))
        if mantissa >= 1 << MANTISSA_BITS:
            k -= 1
        elif mantissa < 1 << (MANTISSA_BITS - 1):
            k += 1
        else:
            return mantissa, k


def rounded_quotient(numerator: np.ndarray, denominator) -> np.ndarray:
    """round_round_half_even(float32(numerator / denominator)) for int64 numerators (any sign) and positive
    denominators below 2**38 (broadcast): the float32 division's rounding to 24 significant bits, then the
    integer rounding - what onnxruntime's x / scale then nearbyint give, on integers only. (The scaled
    numerator stays near denominator * 2**24, so nothing passes int64.)"""
    n = np.asarray(numerator, dtype=np.int64)
    d = np.broadcast_to(np.asarray(denominator, dtype=np.int64), n.shape)
    magnitude = np.abs(n)
    shift = MANTISSA_BITS - (bit_length(magnitude) - bit_length(d))  # |n/d| * 2**shift in (2**23, 2**25)
    significand, shift = _significand(magnitude, d, shift)
    too_long = significand >= 1 << MANTISSA_BITS
    if np.any(too_long):
        shorter, _ = _significand(magnitude, d, shift - 1)
        significand, shift = np.where(too_long, shorter, significand), np.where(too_long, shift - 1, shift)
    whole = np.where(shift <= 0, significand << np.maximum(-shift, 0),
                     round_half_even(significand, np.left_shift(np.int64(1), np.clip(shift, 0, 62))))
    return with_sign_of(n, np.where(magnitude == 0, 0, whole))


def _significand(magnitude, d, shift):
    top = np.where(shift >= 0, magnitude << np.clip(shift, 0, 62), magnitude)
    bottom = np.where(shift >= 0, d, d << np.clip(-shift, 0, 62))
    return round_half_even(top, bottom), shift


def float32_multiplier(a_scales, b_scales, y_scales) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's requantization multiplier fl(fl(a_scale * b_scale) / y_scale) (float32 steps, broadcast)
    as (M, k), the value M * 2**-k with M of 24 bits: exact rational arithmetic on the float32 scales."""
    scales = np.broadcast_arrays(*(np.asarray(v, dtype=np.float32) for v in (a_scales, b_scales, y_scales)))
    mantissas, shifts = [], []
    for a, b, y in zip(*(v.reshape(-1) for v in scales)):
        product = Fraction(float(a)) * Fraction(float(b))
        mantissa, k = float32_of_ratio(product.numerator, product.denominator)
        quotient = Fraction(mantissa) * Fraction(2) ** -k / Fraction(float(y))
        mantissa, k = float32_of_ratio(quotient.numerator, quotient.denominator)
        mantissas.append(mantissa)
        shifts.append(k)
    shape = scales[0].shape
    return np.array(mantissas, dtype=np.int64).reshape(shape), np.array(shifts, dtype=np.int64).reshape(shape)


def float32_rounded(n: np.ndarray) -> np.ndarray:
    """The int64 values n rounded to 24 significant bits (ties to even): what a conversion to float32 keeps."""
    n = np.asarray(n, dtype=np.int64)
    magnitude = np.abs(n)
    shift = np.maximum(bit_length(magnitude) - MANTISSA_BITS, 0)
    kept = round_half_even(magnitude, np.left_shift(np.int64(1), shift)) << shift
    return with_sign_of(n, kept)


def lower_requantization(ctx: CompileContext, a: int, b: int, y: int) -> tuple[dict, dict]:
    """(attrs, consts) of a QLinear op's output step from the constant scales at inputs a, b (one value, or
    for b one per output channel) and y, and y's zero point at y + 1: the multiplier (M, k) of
    float32_multiplier; the output's integer range from the zero point's type."""
    for index in (a, b, y):
        if not ctx.inputs[index].is_const:
            ctx.unsupported("scales computed at run time")
    mantissa, shift = float32_multiplier(*(np.asarray(ctx.inputs[i].value) for i in (a, b, y)))
    if np.any(shift > 37) or np.any(shift < 0):
        ctx.unsupported("a requantization multiplier outside [2**-13, 1]")
    low, high = RANGES[quantized_type(ctx, y + 1)]
    consts = {"mantissa": mantissa.reshape(-1), "shift": shift.reshape(-1), "y_zero": zero_point(ctx, y + 1)}
    return {"low": low, "high": high}, consts


def requantized_output(acc: np.ndarray, attrs: dict, consts: dict, channel_axis: int) -> np.ndarray:
    """clip(round_round_half_even(fl32(fl32(acc) * multiplier)) + y_zero, low, high): onnxruntime's
    MlasRequantizeOutput on integers (the multiplier per channel along `channel_axis` when it has several)."""
    mantissa, shift = (per_axis(consts[key], channel_axis, acc.ndim) for key in ("mantissa", "shift"))
    y = rounded_quotient(float32_rounded(acc) * mantissa, np.left_shift(np.int64(1), shift))
    return np.clip(y + consts["y_zero"].reshape(()), attrs["low"], attrs["high"])


def centered_weights(ctx: CompileContext, weight: int, zero: int) -> np.ndarray:
    """A constant integer conv weight less its constant zero point (one value or one per output channel)."""
    x, w = ctx.inputs[0], ctx.inputs[weight]
    if x.frac is not None or not w.is_const:
        ctx.unsupported("needs an integer input and constant integer weights")
    values = np.asarray(w.value).astype(np.int64)
    zero_point = ctx.inputs[zero] if len(ctx.inputs) > zero else None
    if zero_point is None:
        return values
    if not zero_point.is_const:
        ctx.unsupported("a weight zero point computed at run time")
    return values - np.asarray(zero_point.value).astype(np.int64).reshape((-1,) + (1,) * (values.ndim - 1))
