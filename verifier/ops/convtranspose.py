import math

import numpy as np

from verifier import cost
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import gemm, plan_gemm
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import epilogue, kernel_path, prepared, quantize_const, weight_frac
from verifier.ops._ranges import proven_width as _proven, saturated
from verifier.ops._operands import narrowed, narrowing, operand_bits, operand_bound, output_scale

BIAS_BITS = 61  # as Conv: the bias lives at the accumulator scale
TAP_BASE = cost.NODE_BASE // 8  # the dispatch of one tap's strided add (measured ~5 us a tap on tiny inputs)


class ConvTranspose:
    """ONNX ConvTranspose (1-D/2-D/3-D; strides, pads, dilations, groups, output_padding, output_shape,
    auto_pad). W (C_in, C_out/group, k...) is quantized at its 16-bit frac fw (8-bit, x narrowed to 8 bits,
    at matmul_bits=8), the bias B at fx + fw. Per group, the products of every tap with every input
    position, cols = W^T @ x (exact int64: float BLAS under C_in/group * |x| * |w| < 2**53 or its chunks,
    int64 loops on the reference path), are added into the full output at position * stride + tap * dilation
    (exact int64 sums); the output is the full one less pads[begin] and pads[end];
    y = requantize(acc + B[o], fx + fw, fy)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, w = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if not w.is_const or (bias is not None and not bias.is_const):
            ctx.unsupported("weights or bias computed at run time")
        if x.frac is None:
            ctx.unsupported("transposed convolution of a plain integer tensor")
        weight = np.asarray(w.value, dtype=np.float64)
        rank, group = weight.ndim - 2, int(ctx.attr("group", 1))
        if rank < 1 or weight.shape[0] % group:
            ctx.unsupported(f"weight of shape {weight.shape} for group={group}")
        kernel = [int(k) for k in ctx.attr("kernel_shape", weight.shape[2:])]
        if kernel != list(weight.shape[2:]):
            ctx.unsupported(f"kernel_shape {kernel} differs from the weight's {list(weight.shape[2:])}")
        geometry = {"strides": [int(s) for s in ctx.attr("strides", [1] * rank)],
                    "dilations": [int(d) for d in ctx.attr("dilations", [1] * rank)],
                    "output_padding": [int(p) for p in ctx.attr("output_padding", [0] * rank)]}
        if any(len(v) != rank for v in geometry.values()) or min(geometry["strides"] + geometry["dilations"]) < 1:
            ctx.unsupported(f"strides, dilations and output_padding need {rank} values, strides and dilations >= 1")
        geometry["pads"] = _pads(ctx, kernel, **geometry)
        narrow = narrowing(ctx, x, "x_shift")
        x_frac = x.frac - narrow.get("x_shift", 0)
        w_frac = weight_frac(weight, ctx.matmul_bits)
        c_in, c_out_group = weight.shape[0] // group, weight.shape[1]
        rows = weight.reshape(group, c_in, c_out_group, -1).transpose(0, 3, 2, 1)  # per group: (taps, C_out/g, C_in/g)
        consts = {"weight": quantize_const(rows.reshape(group, -1, c_in), w_frac, ctx.matmul_bits)}
        if bias is not None:
            consts["bias"] = quantize_const(np.asarray(bias.value, dtype=np.float64), x_frac + w_frac, BIAS_BITS)
        w_bound = int(np.max(np.abs(consts["weight"]))) if weight.size else 0
        plan = plan_gemm(c_in, qmax(ctx.matmul_bits), w_bound)
        out_frac, out_attrs = output_scale(ctx)
        attrs = {**geometry, "kernel": kernel, "acc_frac": x_frac + w_frac, "out_frac": out_frac,
                 "path": plan.path, "path_reason": plan.reason, **narrow, **out_attrs}
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed={1, 2})

    output_size_from_shapes = True
    range_bits = staticmethod(saturated)  # (its epilogue saturates: _ranges.py)
    takes_proven_ranges = True  # run(..., proven=): operands the program proves in range go unchecked

    @staticmethod
    def run(inputs, attrs, consts, proven=()):
        path = kernel_path()
        x, x_bound, _ = narrowed(inputs[0], attrs, "x_shift", path, _proven(proven, 0))
        weight = prepared(consts["weight"])
        group, c_in = weight.shape[0], weight.shape[2]
        kernel, spatial = attrs["kernel"], x.shape[2:]
        if x.ndim != len(kernel) + 2 or x.shape[1] != group * c_in:
            raise ValueError(f"ConvTranspose: input of shape {x.shape} for {group * c_in} channels and a "
                             f"{len(kernel)}-D kernel")
        n, taps = x.shape[0], math.prod(kernel)
        columns = x.reshape(n, group, c_in, -1).transpose(1, 2, 0, 3).reshape(group, c_in, -1)
        products = gemm(weight, columns, b_bound=x_bound, path=path)  # (group, taps * C_out/g, n * positions)
        products = products.reshape((group, taps, weight.shape[1] // taps, n) + tuple(spatial))
        acc = scatter_taps(products, spatial, kernel, attrs)
        bias = consts.get("bias")
        if bias is not None:
            bias = bias.reshape((1, -1) + (1,) * len(kernel))
        return [epilogue(acc, attrs, bias, path)]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: MACs at the weight of the exact path the fast run takes, plus one pass over the tap
        columns (the scatter), the input and the output, plus TAP_BASE per tap (each one numpy add)."""
        x, w = shapes[0], consts["weight"].shape
        n, positions = int(x[0]), math.prod(int(d) for d in x[2:])
        macs = n * positions * math.prod(int(d) for d in w)
        plan = plan_gemm(int(w[2]), operand_bound(attrs), prepared(consts["weight"]).bound)
        passes_over_input = 1 if operand_bits(attrs) == ACT_BITS else 2
        elements = passes_over_input * math.prod(int(d) for d in x) + _output_elements(x, w, attrs)
        columns = n * positions * int(w[0]) * int(w[1])
        return (macs * cost.mac_weight(plan.path) + columns * cost.ARITH + elements * cost.ARITH
                + math.prod(attrs["kernel"]) * TAP_BASE)

    @staticmethod
    def output_size(inputs, attrs, consts):
        """The larger of the full (unpadded) output and the tap columns."""
        x, w = inputs[0].shape, consts["weight"].shape
        return max(_output_elements(x, w, attrs, full=True), int(x[0]) * math.prod(x[2:]) * int(w[0]) * int(w[1]))


def _full_spatial(spatial, attrs) -> list[int]:
    return [(s - 1) * stride + (k - 1) * d + 1 + p for s, k, stride, d, p in
            zip(spatial, attrs["kernel"], attrs["strides"], attrs["dilations"], attrs["output_padding"])]


def _output_elements(x, w, attrs, full: bool = False) -> int:
    if len(x) != len(attrs["kernel"]) + 2:
        raise ValueError(f"ConvTranspose: input of rank {len(x)} for a {len(attrs['kernel'])}-D kernel")
    sizes = _full_spatial([int(d) for d in x[2:]], attrs)
    rank, pads = len(sizes), attrs["pads"]
    sizes = [max(f, f - pads[rank + i]) if full else f - pads[i] - pads[rank + i] for i, f in enumerate(sizes)]
    channels = int(w[0]) * int(w[1]) // math.prod(attrs["kernel"])
    return int(x[0]) * channels * math.prod(max(s, 0) for s in sizes)


def scatter_taps(products, spatial, kernel, attrs) -> np.ndarray:
    """Each tap's products (group, tap, C_out/g, n, spatial...) added at position * stride + tap * dilation
    of the full output (n, C_out, full...), then the pads cut."""
    rank, pads = len(kernel), attrs["pads"]
    group, _, c_out_group, n = products.shape[:4]
    full = _full_spatial(spatial, attrs)
    out = [f - pads[i] - pads[rank + i] for i, f in enumerate(full)]
    if min(out) < 1:
        raise ValueError(f"ConvTranspose: pads {pads} leave no output of the full size {full}")
    extended = tuple(max(f, f - pads[rank + i]) for i, f in enumerate(full))
    acc = np.zeros((n, group, c_out_group) + extended, dtype=np.int64)
    for tap, offsets in enumerate(np.ndindex(*kernel)):
        window = tuple(slice(o * d, o * d + (s - 1) * stride + 1, stride)
                       for o, d, s, stride in zip(offsets, attrs["dilations"], spatial, attrs["strides"]))
        acc[(Ellipsis,) + window] += np.moveaxis(products[:, tap], 2, 0)
    cut = tuple(slice(pads[i], pads[i] + out[i]) for i in range(rank))
    return np.ascontiguousarray(acc.reshape((n, group * c_out_group) + extended)[(Ellipsis,) + cut])


def _pads(ctx, kernel, strides, dilations, output_padding) -> list[int]:
    """Explicit pads [begin..., end...]: the attribute, or from output_shape / auto_pad=SAME_* (ONNX: the
    total padding is the full size less the wanted one; SAME_UPPER puts the smaller half first, the others
    the larger half). A negative end pad (output_shape past the full output) extends it with zeros."""
    rank, mode = len(kernel), ctx.attr("auto_pad", "NOTSET")
    wanted = ctx.attr("output_shape")
    if wanted is None and mode in ("NOTSET", "", "VALID"):
        pads = [0] * (2 * rank) if mode == "VALID" else [int(p) for p in ctx.attr("pads", [0] * (2 * rank))]
        if len(pads) != 2 * rank or min(pads) < 0:
            ctx.unsupported(f"pads {pads} for a {rank}-D kernel")
        return pads
    shape = ctx.inputs[0].shape
    if shape is None or len(shape) != rank + 2 or any(d is None for d in shape[2:]):
        ctx.unsupported("output_shape or auto_pad needs static spatial input dims")
    spatial = [int(d) for d in shape[2:]]
    wanted = [s * stride for s, stride in zip(spatial, strides)] if wanted is None else [int(d) for d in wanted][-rank:]
    begin, end = [], []
    for s, k, stride, d, p, size in zip(spatial, kernel, strides, dilations, output_padding, wanted):
        total = (s - 1) * stride + (k - 1) * d + 1 + p - size
        if total < 0:  # (as onnxruntime: an output_shape past the full output ends in zeros, plus the bias)
            begin.append(0)
            end.append(total)
            continue
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin + end
