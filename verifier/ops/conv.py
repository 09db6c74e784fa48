import math

import numpy as np

from verifier import cost
from verifier.fixedpoint import ACT_BITS, qmax
from verifier.kernels import conv, max_pool, plan_conv
from verifier.kernels.convolution import bind_conv
from verifier.kernels.pooling import pool_arguments
from verifier.kernels.window import kernel_size, normalize, output_shape
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import (epilogue, kernel_path, narrowable, prepared, quantize_const, requantize_spec,
                                  weight_frac, window_buffer_size, window_cost, window_geometry, window_output_shape)
from verifier.ops._ranges import proven_width as _proven, saturated
from verifier.ops._operands import (entering, narrowed, narrowing, operand_bits, operand_bound,
                                    output_scale)

BIAS_BITS = 61  # a bias may dwarf the products at the accumulator scale; int64 still holds the sum


class Conv:
    """ONNX Conv (1-D/2-D/3-D; strides, pads incl. auto_pad, dilations, groups incl. depthwise).
    W is quantized at its 16-bit frac fw (8-bit, and x narrowed to 8 bits, at matmul_bits=8: _operands.py),
    the bias B at the accumulator frac fx + fw;
    acc[n, o, p] = sum over the window and the group's input channels of w * x, exact in int64 (fast:
    im2col + float BLAS under K * |x| * |w| < 2**53, K-chunked otherwise; reference: direct int64
    loops; identical bits); y = requantize(acc + B[o], fx + fw, fy). A MaxPool that alone reads y fuses into the
    node (compiler/fuse.py: attrs["pool"], its geometry): the same integers as the two nodes."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, w = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if not w.is_const:
            ctx.unsupported("weights computed at run time")
        if x.frac is None:
            ctx.unsupported("convolution of a plain integer tensor")
        weight = np.asarray(w.value, dtype=np.float64)
        _, strides, pads, dilations = window_geometry(ctx, weight.shape)
        narrow = narrowing(ctx, x, "x_shift")
        x_frac = x.frac - narrow.get("x_shift", 0)
        w_frac = weight_frac(weight, ctx.matmul_bits)
        consts = {"weight": quantize_const(weight, w_frac, ctx.matmul_bits)}
        absorbed = {1}
        if bias is not None:
            if not bias.is_const:
                ctx.unsupported("bias computed at run time")
            consts["bias"] = quantize_const(np.asarray(bias.value, dtype=np.float64), x_frac + w_frac, BIAS_BITS)
            absorbed.add(2)
        group = int(ctx.attr("group", 1))
        w_bound = int(np.max(np.abs(consts["weight"]))) if weight.size else 0
        static_shape = x.shape if x.shape is not None and None not in tuple(x.shape[1:]) else None
        geometry = {"strides": strides, "pads": pads, "dilations": dilations} if static_shape else {}
        plan = plan_conv(x.shape, weight.shape, group, qmax(ctx.matmul_bits), w_bound, **geometry)
        out_frac, out_attrs = output_scale(ctx)
        attrs = {"strides": strides, "pads": pads, "dilations": dilations, "group": group,
                 "acc_frac": x_frac + w_frac, "out_frac": out_frac, "path": plan.path, "path_reason": plan.reason}
        attrs.update(narrow, **out_attrs)
        return Lowering(out_fracs=[out_frac], attrs=attrs, consts=consts, absorbed=absorbed)

    fuses_relu = True  # run applies attrs["relu"] in its epilogue
    output_size_from_shapes = True
    range_bits = staticmethod(saturated)  # (its epilogue saturates: _ranges.py)
    takes_proven_ranges = True  # run(..., proven=): operands the program proves in range go unchecked
    places_output = True  # run(..., out=) writes into the caller's array where its kernel can (interpreter.py)
    reads_narrow = True  # run and bind's function take an int16 x as it is (replays.py)

    @staticmethod
    def run(inputs, attrs, consts, out=None, proven=()):
        path = kernel_path()
        x, x_bound, x_range = narrowed(inputs[0], attrs, "x_shift", path, _proven(proven, 0))
        weight, bias = prepared(consts["weight"]), consts.get("bias")
        geometry = {"strides": attrs["strides"], "pads": attrs["pads"], "dilations": attrs["dilations"],
                    "group": attrs["group"], "x_bound": x_bound, "x_range": x_range, "path": path}
        spec = None if path == "reference" else requantize_spec(weight, attrs, bias, weight.shape[0])
        pool = attrs.get("pool")
        if spec is not None:  # the kernel ends with the epilogue, fused into its product where it can
            return [conv(x, weight, requantize=spec, out=out, pool=pool, **geometry)]
        acc = conv(x, weight, **geometry)
        if bias is not None:
            bias = bias.reshape((1, -1) + (1,) * (acc.ndim - 2))
        y = epilogue(acc, attrs, bias, path)
        if pool is not None:
            kernel, geometry = pool_arguments(pool)
            y = max_pool(y, kernel, **geometry)
        return [y]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None, proven=()):
        """run's fast path for an input of these shapes, its kernel chosen once (interpreter replays), where the kernel
        is a fused one (convolution.bind_conv); else None. It carries `narrowed` (_common.narrowable)."""
        weight = prepared(consts["weight"])
        spec = requantize_spec(weight, attrs, consts.get("bias"), weight.shape[0])
        kernel = spec and bind_conv(shapes[0], weight, attrs["strides"], attrs["pads"], attrs["dilations"],
                                    attrs["group"], operand_bound(attrs), spec, attrs.get("pool"))
        if not kernel:
            return None
        take = entering(attrs, "x_shift", _proven(proven, 0))
        return narrowable(lambda x, out=None: kernel(take(x), out), kernel.result_shape)

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: MACs at the weight of the exact path the fast run takes (the plan from the weight's
        bound and the activation bound of its operand width, so the same on every machine), plus the column
        buffer it gathers and one pass over input and output (two over the input when it is narrowed)."""
        x, w = shapes[0], consts["weight"].shape
        out = conv_output_spatial(x, w, attrs)
        n, oc, group = int(x[0]), int(w[0]), int(attrs["group"])
        positions = n * math.prod(out)
        macs = positions * oc * math.prod(int(d) for d in w[1:])
        columns = positions * int(w[1]) * group * kernel_size(w[2:])
        w_bound = prepared(consts["weight"]).bound
        plan = plan_conv(tuple(x), w, group, operand_bound(attrs), w_bound, strides=attrs["strides"],
                         pads=attrs["pads"], dilations=attrs["dilations"])
        passes_over_input = 1 if operand_bits(attrs) == ACT_BITS else 2
        elements = passes_over_input * math.prod(int(d) for d in x) + positions * oc
        pooled = 0
        if "pool" in attrs:  # a fused MaxPool: its windows over the convolution's output, and its output
            conv_output = (n, oc) + tuple(out)
            pooled = (window_cost([conv_output], attrs["pool"], {})
                      + math.prod(window_output_shape(conv_output, attrs["pool"])))
        return macs * cost.mac_weight(plan.path) + columns * cost.COLUMN + (elements + pooled) * cost.ARITH

    @staticmethod
    def output_size(inputs, attrs, consts):
        """The larger of the output (before a fused MaxPool, and that pool's padded copy of it) and the im2col column
        buffer of the fast path."""
        x, w = inputs[0].shape, consts["weight"].shape
        spatial = conv_output_spatial(x, w, attrs)
        positions = int(x[0]) * math.prod(spatial)
        largest = max(positions * int(w[0]), positions * int(w[1]) * int(attrs["group"]) * kernel_size(w[2:]))
        if "pool" in attrs:
            largest = max(largest, window_buffer_size((int(x[0]), int(w[0])) + tuple(spatial), attrs["pool"]))
        return largest


def conv_output_spatial(x, w, attrs):
    """The output's spatial dims of a Conv-like node (Conv, ConvInteger) on input shape x, weight shape w."""
    rank = len(w) - 2
    if len(x) != rank + 2:
        raise ValueError(f"Conv: input of rank {len(x)} for a weight of rank {len(w)}")
    return output_shape(tuple(int(d) for d in x[2:]), w[2:],
                        *normalize(rank, attrs["strides"], attrs["pads"], attrs["dilations"]))
