from verifier.fixedpoint import rounding_divide
from verifier.kernels import avg_pool, avg_pool_sum
from verifier.ops import CompileContext, Lowering
from verifier.ops._common import auto_pads, kernel_path, window_cost, window_output_size
from verifier.ops._ranges import of_first_input


class AveragePool:
    """y = rounding_divide(window sum, window count): the exact int64 sum of each window divided by the
    number of taps counted (inside the input, plus the explicit pads when count_include_pad=1; never the
    extra end padding of ceil_mode), rounded half away from zero (fast: sums and divisions in one compiled
    pass). Output frac = input frac."""

    range_bits = staticmethod(of_first_input)  # (rounded averages of its input: _ranges.py)

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        kernel = list(ctx.attr("kernel_shape"))
        rank = len(kernel)
        strides = list(ctx.attr("strides", [1] * rank))
        dilations = list(ctx.attr("dilations", [1] * rank))
        attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
                 "pads": auto_pads(ctx, kernel, strides, dilations), "ceil_mode": int(ctx.attr("ceil_mode", 0)),
                 "count_include_pad": int(ctx.attr("count_include_pad", 0))}
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        geometry = {"strides": attrs["strides"], "pads": attrs["pads"], "dilations": attrs["dilations"],
                    "ceil_mode": bool(attrs["ceil_mode"]), "count_include_pad": bool(attrs["count_include_pad"])}
        if kernel_path() != "reference":  # (one compiled pass for 1-D and 2-D pools: the same integers)
            return [avg_pool(inputs[0], attrs["kernel_shape"], **geometry)]
        return [rounding_divide(*avg_pool_sum(inputs[0], attrs["kernel_shape"], **geometry))]


AveragePool.cost = staticmethod(window_cost)  # work: output elements times the window, plus the input
AveragePool.output_size = staticmethod(window_output_size)
AveragePool.output_size_from_shapes = True
