import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._common import const_ints


class Slice:
    """Python-style slicing per axis (starts, ends clamped as ONNX; negative steps allowed); values and
    frac unchanged. starts/ends/axes/steps are constants in the program or run-time integer tensors."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        attrs, absorbed = {}, set()
        if ctx.opset < 10:
            for key in ("starts", "ends", "axes"):
                if ctx.attr(key) is not None:
                    attrs[key] = [int(v) for v in ctx.attr(key)]
        else:
            for index, key in enumerate(("starts", "ends", "axes", "steps"), start=1):
                values = const_ints(ctx, index, key)
                if values is not None:
                    attrs[key] = values
                    absorbed.add(index)
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        params = {}
        for index, key in enumerate(("starts", "ends", "axes", "steps"), start=1):
            if key in attrs:
                params[key] = attrs[key]
            elif index < len(inputs) and inputs[index] is not None:
                params[key] = [int(v) for v in inputs[index].reshape(-1)]
        starts, ends = params["starts"], params["ends"]
        axes = params.get("axes", list(range(len(starts))))
        steps = params.get("steps", [1] * len(starts))
        index = [slice(None)] * x.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if step == 0:
                raise ValueError("Slice step 0")
            dim = x.shape[axis]
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            if step > 0:
                index[axis] = slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
                index[axis] = slice(start, None if end < 0 else end, step)
        return [x[tuple(index)]]

