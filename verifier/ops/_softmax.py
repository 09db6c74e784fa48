"""Lowering shared by Softmax and LogSoftmax: the axis (opset < 13 flattens to 2-D around it, as ONNX
did then), the integer kernels in verifier/nonlinear/exp_log.py."""

import numpy as np

from verifier.fixedpoint import ACT_BITS, frac_for_range, qmax
from verifier.nonlinear.exp_log import exp_neg_table, softmax
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


def bind_fast_softmax(shape: tuple, attrs):
    """run_on_axis(fast_softmax, x, attrs) for every x of `shape`, as a function of x (interpreter replays), where
    its axis is the last one (or, flattened to 2-D around it, opset < 13): the rows, table and limits laid out once;
    None otherwise. Where the compiled loop declines, None from the function: the op's run takes it."""
    from verifier.kernels import loops

    shape = tuple(shape)
    if not shape or 0 in shape:
        return None
    axis = attrs["axis"] % len(shape)
    if not attrs["coerce"] and axis != len(shape) - 1:
        return None
    width = int(np.prod(shape[axis:], dtype=np.int64)) if attrs["coerce"] else shape[-1]
    table, masked = exp_neg_table(attrs["in_frac"]), bool(attrs.get("masked", 0))
    arguments = (table, attrs["out_frac"], masked, qmax(ACT_BITS))

    def softmaxed(x: np.ndarray) -> np.ndarray | None:
        rows = np.ascontiguousarray(x, dtype=np.int64).reshape(-1, width)
        out = np.empty(rows.shape, dtype=np.int64)
        return out.reshape(shape) if loops.softmax(rows, *arguments, out) else None

    return softmaxed


def fast_softmax(x: np.ndarray, in_frac: int, axis: int, out_frac: int, bits: int = ACT_BITS,
                 masked: bool = False) -> np.ndarray:
    """exp_log.softmax on the fast path: one compiled loop per row (kernels.loops.softmax, the same integer
    steps over the same table), the axis moved last; the numpy form for what the loop leaves to it."""
    from verifier.kernels import loops

    x = np.asarray(x, dtype=np.int64)
    if x.size == 0 or x.ndim == 0:
        return softmax(x, in_frac, axis, out_frac, bits, masked=masked)
    rows = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    out = np.empty(rows.shape, dtype=np.int64)
    table = exp_neg_table(in_frac)
    if not loops.softmax(rows.reshape(-1, rows.shape[-1]), table, out_frac, masked, qmax(bits),
                         out.reshape(-1, rows.shape[-1])):
        return softmax(x, in_frac, axis, out_frac, bits, masked=masked)
    return np.moveaxis(out, -1, axis)
