import numpy as np

from verifier.fixedpoint import quantize
from verifier.ops import CompileContext, Lowering


class Clip:
    """y = min(max(q, lo), hi) with lo, hi the bounds quantized at the input's frac (round half away from
    zero; an absent bound is no bound). Output frac = input frac. ReLU6 and hardtanh export to this."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x = ctx.inputs[0]
        bounds = []
        for index, attr, default in ((1, "min", -np.inf), (2, "max", np.inf)):
            operand = ctx.inputs[index] if len(ctx.inputs) > index else None
            if operand is not None and not operand.is_const:
                ctx.unsupported("clip bounds computed at run time")
            value = float(np.asarray(operand.value).reshape(-1)[0]) if operand is not None else float(ctx.attr(attr, default))
            bounds.append(value)
        attrs = {}
        for key, value in zip(("lo", "hi"), bounds):
            if np.isfinite(value):
                attrs[key] = int(value) if x.frac is None else int(quantize(np.array([value]), x.frac, 62)[0])
        return Lowering(out_fracs=[x.frac], attrs=attrs, absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        x = inputs[0]
        if "lo" in attrs:
            x = np.maximum(x, attrs["lo"])
        if "hi" in attrs:
            x = np.minimum(x, attrs["hi"])
        return [x]
