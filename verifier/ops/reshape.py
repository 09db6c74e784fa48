import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints
from verifier.ops._ranges import of_first_input


class Reshape:
    """Values and frac unchanged. The target shape is a constant (in the program) or a run-time integer
    tensor; 0 copies the input dim (unless allowzero=1) and -1 is inferred, as ONNX."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs = {"allowzero": int(ctx.attr("allowzero", 0))}
        shape = const_ints(ctx, 1, "shape") if len(ctx.inputs) > 1 else list(ctx.attr("shape", []))
        absorbed = set()
        if shape is not None:
            attrs["shape"] = shape
            absorbed.add(1)
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        shape = attrs["shape"] if "shape" in attrs else [int(v) for v in inputs[1].reshape(-1)]
        return [x.reshape(_target(shape, x.shape, attrs))]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for an input of this shape and a target shape that is a constant or, in `fixed`, the same on every
        run (interpreter replays): the target resolved once; None where it is computed at run time."""
        if "shape" in attrs:
            target = attrs["shape"]
        elif fixed and 1 in fixed:
            target = [int(v) for v in fixed[1].reshape(-1)]
        else:
            return None
        target = tuple(_target(target, shapes[0], attrs))
        return lambda inputs: [inputs[0].reshape(target)]


def _target(shape: list, x_shape: tuple, attrs: dict) -> list:
    """The shape to reshape an input of x_shape to: `shape` with each 0 taken from the input (unless allowzero)."""
    if attrs["allowzero"]:
        return shape
    return [x_shape[i] if d == 0 else d for i, d in enumerate(shape)]
