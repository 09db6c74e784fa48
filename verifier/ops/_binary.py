"""Lowering shared by the elementwise sums (Add, Sub, Sum) and products (Mul): numpy broadcasting,
constants absorbed at the scale the op computes in, one rounding at the end."""

import numpy as np

from verifier.fixedpoint import ACT_BITS, INT64_SAFE, qmax, requantize, round_shift
from verifier.kernels import requantize as requantize_fast
from verifier.kernels.window import scratch
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import kernel_path, quantize_const

WIDE_BITS = 60  # absorbed addends live at the sum's scale; they may be far wider than an activation
MAX_ALIGN_SHIFT = 44  # a 16-bit operand shifted left by at most this stays below 2**60


def check_legacy_broadcast(ctx: CompileContext) -> None:
    """Opsets < 7 broadcast only when asked, optionally at an `axis`; trailing alignment is numpy's rule."""
    if ctx.opset < 7 and ctx.attr("broadcast", 0) and ctx.attr("axis") is not None:
        shapes = [o.shape for o in ctx.inputs]
        if shapes[0] is None or shapes[1] is None or ctx.attr("axis") % len(shapes[0]) + len(shapes[1]) != len(shapes[0]):
            ctx.unsupported("legacy broadcast at an axis other than the trailing one")


def lower_sum(ctx: CompileContext, signs: list[int]) -> Lowering:
    """sum_i sign_i * x_i, every operand moved exactly to the common frac c = max(fracs, out frac)."""
    check_legacy_broadcast(ctx)
    operands = ctx.inputs
    if all(o.frac is None for o in operands):  # plain integers (shape arithmetic): exact, no scale
        return Lowering(out_fracs=[None], attrs={"signs": signs, "integer": 1})
    if any(o.frac is None and not o.is_const for o in operands):
        ctx.unsupported("mixes plain integer and fixed-point tensors")
    out_frac = ctx.out_frac()
    runtime_fracs = [o.frac for o in operands if not o.is_const]
    common = max(runtime_fracs + [out_frac])
    if runtime_fracs and common - min(runtime_fracs) > MAX_ALIGN_SHIFT:
        # operands of wildly different scales: the finer ones are rounded to c first (an extra rounding)
        # rather than shifting a 16-bit value past int64
        common = min(runtime_fracs) + MAX_ALIGN_SHIFT
    consts, absorbed, shifts = {}, set(), []
    for index, operand in enumerate(operands):
        if operand.is_const:
            consts[f"k{index}"] = quantize_const(operand.value, common, WIDE_BITS)
            absorbed.add(index)
            shifts.append(0)
        else:
            shifts.append(common - operand.frac)
    attrs = {"signs": signs, "shifts": shifts, "acc_frac": common, "out_frac": out_frac}
    return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)


def run_sum(inputs, attrs, consts):
    """The sum; a fused Relu (attrs["relu"], verifier/compiler/fuse.py) is applied here too. The fast path
    takes fewer passes over memory (shifts into one preallocated total, requantize and Relu in place); it
    falls back to the reference steps whenever an operand needs them (a right shift, or a value the
    reference's headroom check would refuse), so both give the same bits, errors included."""
    fast = not attrs.get("integer") and kernel_path() != "reference"
    compiled = _sum_compiled(inputs, attrs, consts) if fast else None
    if compiled is not None:
        return [compiled]
    if attrs.get("integer"):
        total = _sum_reference(inputs, attrs, consts)
    elif not fast or not _fast_sum_applies(inputs, attrs):
        total = requantize(_sum_reference(inputs, attrs, consts), attrs["acc_frac"], attrs["out_frac"])
    else:
        return [_sum_fast(inputs, attrs, consts)]
    if attrs.get("relu"):
        np.maximum(total, 0, out=total)
    return [total]


def _sum_reference(inputs, attrs, consts):
    total = None
    for index, (x, sign) in enumerate(zip(inputs, attrs["signs"])):
        if x is None:
            x = consts[f"k{index}"]
        elif not attrs.get("integer"):
            x = round_shift(x, -attrs["shifts"][index])
        term = x if sign > 0 else -x
        total = term if total is None else total + term
    return np.array(total, dtype=np.int64)  # a fresh array (the Relu above works in place)


def _fast_sum_applies(inputs, attrs) -> bool:
    """Every run-time operand is shifted left (or not at all) and passes the reference's headroom check
    (|x| < INT64_SAFE >> shift; an unshifted operand has none)."""
    for x, shift in zip(inputs, attrs["shifts"]):
        if x is None or shift == 0:
            continue
        if not 0 < shift < 62:
            return False
        safe = INT64_SAFE >> shift
        if x.size and (int(x.max()) >= safe or int(x.min()) <= -safe):
            return False
    return True


def bind_sum(shapes, attrs, consts, fixed=None):
    """run_sum's fast path for inputs of these shapes, as a function of the inputs (interpreter replays): the
    compiled two-term pass of _sum_compiled with the terms' order and layout decided once; None where run_sum would
    not take it."""
    shift = attrs["acc_frac"] - attrs["out_frac"]
    if (attrs.get("integer") or len(shapes) != 2 or not 0 <= shift <= 62
            or not all(0 <= s < 62 for s in attrs["shifts"])):
        return None
    layout = _PairLayout.of(shapes, consts)
    if layout is None:
        return None
    from verifier.kernels import loops

    order = layout.order
    relu, limit = bool(attrs.get("relu")), qmax(ACT_BITS)
    arguments = ([0 if shapes[i] is None else attrs["shifts"][i] for i in order] + [attrs["signs"][i] for i in order]
                 + [shift, 0 if relu else -limit, limit, not relu])

    def summed(inputs):
        out = np.empty(layout.shape, dtype=np.int64)
        if loops.sum_requantize(*layout.terms(inputs), *arguments, out.reshape(layout.full)):
            return [out]
        return run_sum(inputs, attrs, consts)  # (an operand past the headroom check: the reference's error)

    return summed


def bind_multiply(shapes, attrs, consts, fixed=None):
    """run_product's fast path for inputs of these shapes (interpreter replays): _product_compiled's pass with the
    factors' order and layout decided once; None where run_product would not take it."""
    shift = attrs["acc_frac"] - attrs["out_frac"]
    layout = None if attrs.get("integer") or not 0 <= shift <= 62 else _PairLayout.of(shapes, consts)
    if layout is None:
        return None
    from verifier.kernels import loops

    limit = qmax(ACT_BITS)

    def multiplied(inputs):
        out = np.empty(layout.shape, dtype=np.int64)
        loops.multiply_requantize(*layout.terms(inputs), shift, limit, out.reshape(layout.full))
        return [out]

    return multiplied


class _PairLayout:
    """How _full_and_broadcast lays out two operands of given shapes (constants: their values): which comes first
    (`order`), their 2-D shapes (`full`, `other`), and the result's shape; decided once per shapes."""

    def __init__(self, order, full, other, shape, constants):
        self.order, self.full, self.other, self.shape, self._constants = order, full, other, shape, constants

    @staticmethod
    def of(shapes, consts) -> "_PairLayout | None":
        values = [consts[f"k{i}"] if shape is None else np.empty(shape, dtype=np.int64)
                  for i, shape in enumerate(shapes)]
        found = _in_order(*values)
        if found is None:
            return None
        order, laid_out = found
        constants = {i: laid_out[position] for position, i in enumerate(order) if shapes[i] is None}
        return _PairLayout(order, laid_out[0].shape, laid_out[1].shape, np.shape(values[order[0]]), constants)

    def terms(self, inputs) -> list:
        """The two operands in order, laid out as the compiled loops take them."""
        return [self._constants[i] if i in self._constants
                else np.ascontiguousarray(inputs[i], dtype=np.int64).reshape(layout)
                for i, layout in zip(self.order, (self.full, self.other))]


def _sum_compiled(inputs, attrs, consts) -> np.ndarray | None:
    """A sum of two terms - a residual add, a bias add - in one compiled pass (kernels.loops.sum_requantize):
    the same bits as _sum_fast. None when it does not apply (more terms, a broadcast other than over leading
    axes, shifts outside the loop's range)."""
    shift = attrs["acc_frac"] - attrs["out_frac"]
    if len(inputs) != 2 or not 0 <= shift <= 62 or not all(0 <= s < 62 for s in attrs["shifts"]):
        return None
    terms = [(consts[f"k{i}"] if x is None else x, 0 if x is None else attrs["shifts"][i], attrs["signs"][i])
             for i, x in enumerate(inputs)]
    found = _in_order(terms[0][0], terms[1][0])
    if found is None:
        return None
    from verifier.kernels import loops

    order, (full, other) = found
    terms = [terms[i] for i in order]
    shape = np.shape(terms[0][0])
    out = np.empty(shape, dtype=np.int64)
    relu, limit = bool(attrs.get("relu")), qmax(ACT_BITS)
    if not loops.sum_requantize(full, other, terms[0][1], terms[1][1], terms[0][2], terms[1][2], shift,
                                0 if relu else -limit, limit, not relu, out.reshape(full.shape)):
        return None  # (an operand past the headroom check: _sum_fast falls back to the reference and its error)
    return out


def _in_order(first, second):
    """(order, _full_and_broadcast of the two in that order): (0, 1) when `second` broadcasts to `first`, else (1, 0)
    when `first` broadcasts to `second`; None when neither does over leading axes."""
    laid_out = _full_and_broadcast(first, second)
    if laid_out is not None:
        return (0, 1), laid_out
    laid_out = _full_and_broadcast(second, first)
    return None if laid_out is None else ((1, 0), laid_out)


def _full_and_broadcast(full, other):
    """(full as (R, M), other as (1, M) or (1, 1)), int64 and contiguous, when `other` broadcasts to full's
    shape over its leading axes only (or is one value): the layout of the compiled elementwise loops. None
    otherwise (a per-channel (C, 1, 1) bias, say)."""
    full, other = np.asarray(full), np.asarray(other)
    if full.size == 0 or np.broadcast_shapes(full.shape, other.shape) != full.shape:
        return None
    m = full.size
    if other.size > 1:
        dims = other.shape
        while dims[0] == 1:
            dims = dims[1:]
        if full.shape[full.ndim - len(dims):] != dims:
            return None
        m = other.size
    rows = np.ascontiguousarray(full, dtype=np.int64).reshape(-1, m)
    return rows, np.ascontiguousarray(other, dtype=np.int64).reshape(1, -1)


def _sum_fast(inputs, attrs, consts):
    """The same int64 sum as the reference (two's complement, so even a wrap, which only hostile
    constants could cause, wraps alike), then kernels.requantize with the Relu in its clip."""
    terms = [consts[f"k{i}"] if x is None else x for i, x in enumerate(inputs)]
    total = np.empty(np.broadcast_shapes(*(t.shape for t in terms)), dtype=np.int64)
    for index, (term, sign) in enumerate(zip(terms, attrs["signs"])):
        shift = 0 if inputs[index] is None else attrs["shifts"][index]
        if index == 0:
            if shift:
                np.left_shift(term, shift, out=total)
            else:
                np.copyto(total, term)
            if sign < 0:
                np.negative(total, out=total)
            continue
        if shift:
            term = np.left_shift(term, shift, out=scratch("sum_term", term.shape, np.int64))
        (np.add if sign > 0 else np.subtract)(total, term, out=total)
    return requantize_fast(total, attrs["acc_frac"], attrs["out_frac"], ACT_BITS, out=total,
                           relu=bool(attrs.get("relu")))


def lower_product(ctx: CompileContext) -> Lowering:
    check_legacy_broadcast(ctx)
    a, b = ctx.inputs
    if a.frac is None and b.frac is None:  # plain integers
        return Lowering(out_fracs=[None], attrs={"integer": 1})
    consts, absorbed, fracs = {}, set(), []
    for index, operand in enumerate((a, b)):
        if operand.is_const:
            if operand.value.dtype.kind != "f":
                ctx.unsupported("multiplies a fixed-point tensor by an integer constant tensor; cast it first")
            frac = operand.frac  # weight_frac of its finite part: an infinite entry (a mask) saturates
            consts[f"k{index}"] = quantize_const(operand.value, frac, 16)
            absorbed.add(index)
            fracs.append(frac)
        elif operand.frac is None:
            ctx.unsupported("multiplies a plain integer tensor with a fixed-point one")
        else:
            fracs.append(operand.frac)
    out_frac = ctx.out_frac()
    attrs = {"acc_frac": fracs[0] + fracs[1], "out_frac": out_frac}
    return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)


def run_product(inputs, attrs, consts):
    a = inputs[0] if inputs[0] is not None else consts["k0"]
    b = inputs[1] if inputs[1] is not None else consts["k1"]
    compiled = None if attrs.get("integer") or kernel_path() == "reference" else _product_compiled(a, b, attrs)
    if compiled is not None:
        return [compiled]
    product = np.multiply(a, b, dtype=np.int64)
    if attrs.get("integer"):
        return [product]
    if kernel_path() == "reference":
        return [requantize(product, attrs["acc_frac"], attrs["out_frac"])]
    return [requantize_fast(product, attrs["acc_frac"], attrs["out_frac"], ACT_BITS, out=product)]


def _product_compiled(a, b, attrs) -> np.ndarray | None:
    """a * b requantized in one compiled pass (kernels.loops.multiply_requantize): the same bits as the
    numpy product and kernels.requantize. None when the layout or the shift is not the loop's."""
    shift = attrs["acc_frac"] - attrs["out_frac"]
    found = _in_order(a, b) if 0 <= shift <= 62 else None
    if found is None:
        return None
    from verifier.kernels import loops

    order, laid_out = found
    out = np.empty(np.shape(b if order[0] else a), dtype=np.int64)
    loops.multiply_requantize(*laid_out, shift, qmax(ACT_BITS), out.reshape(laid_out[0].shape))
    return out
