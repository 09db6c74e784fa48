from verifier.kernels import max_pool
from verifier.kernels.pooling import bind_max_pool, pool_arguments
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import auto_pads, narrowable, window_cost, window_output_size
from verifier.ops._ranges import of_first_input


class MaxPool:
    """y = max over each window (kernel_shape, strides, pads incl. auto_pad, dilations, ceil_mode); padding
    never wins. Output frac = input frac; no rounding. The Indices output is not supported."""

    range_bits = staticmethod(of_first_input)  # (its values are its input's: _ranges.py)
    reads_narrow = True  # run and bind's function take an int16 input (replays.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        if len(ctx.output_names) > 1 and ctx.output_names[1]:
            ctx.unsupported("the Indices output")
        kernel = list(ctx.attr("kernel_shape"))
        rank = len(kernel)
        strides = list(ctx.attr("strides", [1] * rank))
        dilations = list(ctx.attr("dilations", [1] * rank))
        attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
                 "pads": auto_pads(ctx, kernel, strides, dilations), "ceil_mode": int(ctx.attr("ceil_mode", 0))}
        return Lowering(out_fracs=[ctx.inputs[0].frac] + [None] * (len(ctx.output_names) - 1), attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        kernel, geometry = pool_arguments(attrs)
        return [max_pool(inputs[0], kernel, **geometry)]

    @staticmethod
    def bind(shapes, attrs, consts, fixed=None):
        """run for an input of this shape, its geometry worked out and checked once (interpreter replays)."""
        kernel, geometry = pool_arguments(attrs)
        pool = bind_max_pool(tuple(shapes[0]), kernel, **geometry)
        return None if pool is None else narrowable(pool, getattr(pool, "result_shape", None))


MaxPool.cost = staticmethod(window_cost)  # work: output elements times the window, plus the input
MaxPool.output_size = staticmethod(window_output_size)
MaxPool.output_size_from_shapes = True
