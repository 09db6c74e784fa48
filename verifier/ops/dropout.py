from verifier.ops import CompileContext, Lowering


class Dropout:
    """Inference mode: y = x (the mask output, when asked for, is all ones)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        training = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if ctx.attr("training_mode", 0) or (training is not None and (not training.is_const or training.value.any())):
            ctx.unsupported("training-mode dropout is random; export the model in eval mode")
        return Lowering(out_fracs=[ctx.inputs[0].frac] + [None] * (len(ctx.output_names) - 1), absorbed={1, 2})

    @staticmethod
    def run(inputs, attrs, consts):
        import numpy as np

        return [inputs[0], np.ones(inputs[0].shape, dtype=np.int64)]
