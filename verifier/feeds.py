"""Checking and quantizing feeds: the one place where user tensors enter the integer world."""

from __future__ import annotations

import numpy as np

from verifier.errors import FeedError, OutOfRangeError
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import loops
from verifier.program import Program, TensorInfo

_EXACT_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_names(program: Program, feeds: dict) -> None:
    expected = [info.name for info in program.inputs]
    if len(feeds) == len(expected) and all([name in feeds for name in expected]):  # (every run: the common case)
        return
    missing = [n for n in expected if n not in feeds]
    extra = [n for n in feeds if n not in expected]
    if missing:
        raise FeedError(f"missing input(s) {missing}; the program takes {expected}")
    if extra:
        raise FeedError(f"unknown input(s) {extra}; the program takes {expected}")


def check_shape(info: TensorInfo, shape: tuple) -> None:
    declared = tuple(info.shape)
    if len(declared) != len(shape) or any(d is not None and d != s for d, s in zip(declared, shape)):
        shown = tuple("?" if d is None else d for d in declared)
        raise FeedError(f"input {info.name!r}: shape {tuple(shape)} does not match the program's {shown}")


def integer_feeds(program: Program, feeds: dict) -> dict[str, np.ndarray]:
    """Validated int64 feeds in program order. Float arrays are quantized with the input's scale; integer
    arrays are taken as already encoded (fixed-point inputs) or as plain integers (integer inputs)."""
    check_names(program, feeds)
    result = {}
    for info in program.inputs:
        value = np.asarray(feeds[info.name])
        check_shape(info, value.shape)
        if value.dtype.kind == "f":
            result[info.name] = _quantize_float(info, value)
        elif value.dtype.kind in "iub":
            result[info.name] = _check_integers(info, value)
        else:
            raise FeedError(f"input {info.name!r}: dtype {value.dtype} is not a number type ({info.type} expected)")
    return result


def check_encoded(program: Program, tensors: dict) -> dict[str, np.ndarray]:
    """Validated feeds decoded from canonical input bytes (what a worker receives)."""
    check_names(program, tensors)
    result = {}
    for info in program.inputs:
        value = tensors[info.name]
        check_shape(info, value.shape)
        result[info.name] = _check_integers(info, value)
    return result


def _quantize_float(info: TensorInfo, value: np.ndarray) -> np.ndarray:
    if info.frac is None:
        raise FeedError(f"input {info.name!r} takes integers ({info.type}), got {value.dtype}")
    limit = qmax(ACT_BITS)
    exact = value.dtype if value.dtype in _EXACT_FLOATS else np.float64  # (float16 widens exactly)
    if info.feature_shifts is not None:  # x * 2**shift per feature: exact in float64 (a power of two)
        value = value.astype(np.float64) * 2.0 ** np.asarray(info.feature_shifts, dtype=np.float64)
        exact = np.float64
    flat = np.ascontiguousarray(value, dtype=exact).reshape(-1)  # one pass: fixedpoint.quantize(bits=63), checked
    q = np.empty(flat.shape, dtype=np.int64)
    finite, largest = loops.quantize(flat, 2.0 ** info.frac, float(qmax(63)), q)
    if not finite:
        raise FeedError(f"input {info.name!r} contains NaN or inf")
    if largest > limit:
        raise OutOfRangeError(_out_of_range(info, value, limit))
    return q.reshape(value.shape)


def _out_of_range(info: TensorInfo, value: np.ndarray, limit: int) -> str:
    """Which value left the range, in the user's units (per feature when the input has feature shifts)."""
    where, shift = "", 0
    if info.feature_shifts is not None:
        feature = int(np.argmax(np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)))
        shift = info.feature_shifts[feature]
        where, value = f" feature {feature}", value[..., feature] * 2.0**-shift
    worst = float(np.max(np.abs(value)))
    return (f"input {info.name!r}{where}: |value| up to {worst:g} is outside the program's range "
            f"±{limit * 2.0 ** -(info.frac + shift):g} (scale 2^-{info.frac + shift}); recompile with "
            f"calibration data that covers it")


def _check_integers(info: TensorInfo, value: np.ndarray) -> np.ndarray:
    value = value.astype(np.int64)
    if info.frac is not None and value.size:
        limit = qmax(ACT_BITS)
        low, high = loops.value_range(np.ascontiguousarray(value).reshape(-1))  # (not max |v|: |INT64_MIN| wraps)
        if low < -limit or high > limit:
            raise OutOfRangeError(f"input {info.name!r}: encoded values must lie in ±{limit}")
    return value
