import math

import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints
from verifier.ops.convtranspose import scatter_taps


class Col2Im:
    """ONNX Col2Im (opset 18; torch's F.fold): x (N, C * prod(block), L) holds L blocks of every channel; block
    l's tap t is added at position l * stride + t * dilation of the padded image (image_shape plus pads), the
    pads then cut: the exact int64 sums ConvTranspose uses (convtranspose.scatter_taps). image_shape and
    block_shape must be constant inputs. y = requantize(sums, fx, fy) at the output's calibrated frac fy (plain
    integers: the exact sums). Error: at most 0.5 output step (one rounding)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        image, block = const_ints(ctx, 1, "image_shape"), const_ints(ctx, 2, "block_shape")
        if image is None or block is None or len(image) != len(block) or min(image + block) < 1:
            ctx.unsupported("image_shape and block_shape must be constant, of one length, and positive")
        rank = len(block)
        attrs = {"image": image, "kernel": block, "strides": list(ctx.attr("strides", [1] * rank)),
                 "dilations": list(ctx.attr("dilations", [1] * rank)), "pads": list(ctx.attr("pads", [0] * 2 * rank))}
        if len(attrs["strides"]) != rank or len(attrs["dilations"]) != rank or len(attrs["pads"]) != 2 * rank \
                or min(attrs["strides"] + attrs["dilations"]) < 1 or min(attrs["pads"]) < 0:
            ctx.unsupported(f"strides {attrs['strides']}, dilations {attrs['dilations']}, pads {attrs['pads']}")
        x = ctx.inputs[0]
        if x.frac is None:
            return Lowering(out_fracs=[None], attrs=attrs, absorbed={1, 2})
        attrs.update(in_frac=x.frac, out_frac=ctx.out_frac())
        return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        blocks, taps = _blocks(x.shape, attrs), math.prod(attrs["kernel"])
        n, channels = x.shape[0], x.shape[1] // taps
        products = x.reshape((n, channels, taps) + tuple(blocks)).transpose((2, 1, 0) + tuple(range(3, 3 + len(blocks))))
        rank, pads = len(blocks), attrs["pads"]
        padded = [size + pads[i] + pads[rank + i] for i, size in enumerate(attrs["image"])]
        covered = [(b - 1) * s + (k - 1) * d + 1
                   for b, k, s, d in zip(blocks, attrs["kernel"], attrs["strides"], attrs["dilations"])]
        geometry = {**attrs, "output_padding": [p - c for p, c in zip(padded, covered)]}  # rows no block reaches
        sums = scatter_taps(products[None], blocks, attrs["kernel"], geometry)
        if "out_frac" not in attrs:
            return [sums]
        return [requantize(sums, attrs["in_frac"], attrs["out_frac"])]

    output_size_from_shapes = True  # (output_size reads the inputs' shapes alone)

    @staticmethod
    def output_size(inputs, attrs, consts):
        x = inputs[0].shape
        _blocks(x, attrs)
        return int(x[0]) * int(x[1]) // math.prod(attrs["kernel"]) * math.prod(attrs["image"])


def _blocks(shape, attrs) -> list[int]:
    """The block count along each image axis, checked against the input's L (ONNX: L is their product)."""
    rank, pads = len(attrs["kernel"]), attrs["pads"]
    blocks = [(size + pads[i] + pads[rank + i] - (k - 1) * d - 1) // s + 1 for i, (size, k, s, d) in
              enumerate(zip(attrs["image"], attrs["kernel"], attrs["strides"], attrs["dilations"]))]
    taps = math.prod(attrs["kernel"])
    if len(shape) != 3 or shape[1] % taps or min(blocks) < 1 or shape[2] != math.prod(blocks):
        raise ValueError(f"Col2Im: input of shape {tuple(shape)} is not (N, C * {taps}, {math.prod(blocks)}) for "
                         f"image {attrs['image']}, block {attrs['kernel']}")
    return blocks
