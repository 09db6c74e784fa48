from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._trees import lower_trees, scores


class TreeEnsembleRegressor:
    """ai.onnx.ml tree ensemble regression (random forests, gradient boosting): the exact integer walk and
    sums of _trees.py, y = requantize(scores, fw, fy) at the output's calibrated frac. post_transform NONE
    only. Error: 0.5 output step plus the leaf weights' rounding at 2**-fw (30 significant bits)."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        transform = ctx.attr("post_transform", "NONE")
        if (transform.decode() if isinstance(transform, bytes) else transform) != "NONE":
            ctx.unsupported(f"post_transform {transform!r}")
        attrs, consts, _ = lower_trees(ctx, int(ctx.attr("n_targets", 1)), "target")
        attrs["out_frac"] = ctx.out_frac()
        return Lowering(out_fracs=[attrs["out_frac"]], attrs=attrs, consts=consts)

    @staticmethod
    def run(inputs, attrs, consts):
        return [requantize(scores(inputs[0], attrs, consts), attrs["weight_frac"], attrs["out_frac"])]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Work: every row through every node (a bound on the walk), and its scores."""
        rows = int(shapes[0][0])
        return rows * (consts["modes"].size + consts["leaf_weights"].shape[1] * consts["roots"].size)
