import numpy as np

from verifier.ops import CompileContext, Lowering


class ArrayFeatureExtractor:
    """ai.onnx.ml: y = X[..., indices] (indices flattened, along the last axis); frac of X unchanged. An
    index outside the last axis is a run error. (skl2onnx maps ArgMax to class labels with it.)"""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if ctx.inputs[1].frac is not None:
            ctx.unsupported("indices must be an integer tensor")
        return Lowering(out_fracs=[ctx.inputs[0].frac])

    @staticmethod
    def run(inputs, attrs, consts):
        data, indices = inputs
        indices = indices.reshape(-1)
        size = data.shape[-1]
        if indices.size and (indices.min() < 0 or indices.max() >= size):
            raise IndexError(f"ArrayFeatureExtractor index outside [0, {size})")
        out = np.take(data, indices, axis=-1)
        return [out.reshape(-1) if data.ndim == 1 else out]

    output_size_from_shapes = True  # (output_size reads the inputs' shapes alone)

    @staticmethod
    def output_size(inputs, attrs, consts):
        data, indices = inputs
        return int(indices.size) * (int(data.size) // max(int(data.shape[-1]), 1))
