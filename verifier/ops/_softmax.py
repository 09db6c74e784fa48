"""Lowering shared by Softmax and LogSoftmax: the axis (opset < 13 flattens to 2-D around it, as ONNX
did then), the integer kernels in verifier/nonlinear/exp_log.py."""

import numpy as np

from verifier.fixedpoint import ACT_BITS, frac_for_range, qmax
from verifier.ops import CompileContext, Lowering

MAX_OUT_FRAC = 30


def lower_softmax(ctx: CompileContext, out_frac: int) -> Lowering:
    x = ctx.inputs[0]
    if x.frac is None:
        ctx.unsupported("needs a fixed-point (float) input, got a plain integer tensor")
    coerce = int(ctx.opset < 13)
    axis = int(ctx.attr("axis", 1 if coerce else -1))
    attrs = {"axis": axis, "coerce": coerce, "in_frac": x.frac, "out_frac": min(out_frac, MAX_OUT_FRAC)}
    if x.may_be_infinite:  # calibration saw -inf (a mask): a saturated -qmax input is -inf
        attrs["masked"] = 1
    return Lowering(out_fracs=[min(out_frac, MAX_OUT_FRAC)], attrs=attrs)


def log_softmax_out_frac(ctx: CompileContext) -> int:
    """The calibrated range when known, else the widest possible: 2 * qmax steps of input plus ln(N)."""
    calibrated = ctx.ranges[0] if ctx.ranges else None
    if calibrated is not None:
        return frac_for_range(calibrated)
    shape = ctx.inputs[0].shape or ()
    n = int(np.prod([d for d in shape if d], dtype=np.int64)) or 1
    return frac_for_range(2 * qmax(ACT_BITS) * 2.0 ** -ctx.inputs[0].frac + np.log(n))


def run_on_axis(kernel, x: np.ndarray, attrs) -> np.ndarray:
    axis = attrs["axis"]
    masked = bool(attrs.get("masked", 0))
    if not attrs["coerce"]:
        return kernel(x, attrs["in_frac"], axis, attrs["out_frac"], masked=masked)
    axis = axis % max(x.ndim, 1)
    flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    return kernel(flat, attrs["in_frac"], 1, attrs["out_frac"], masked=masked).reshape(x.shape)
