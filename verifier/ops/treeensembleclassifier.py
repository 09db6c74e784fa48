import numpy as np

from verifier.fixedpoint import ACT_BITS, frac_for_range, requantize
from verifier.nonlinear.exp_log import softmax
from verifier.nonlinear.tables import apply_table, build_table, sigmoid
from verifier.ops import CompileContext, Lowering
from verifier.ops._trees import lower_trees, scores
from verifier.ops.treeensembleregressor import TreeEnsembleRegressor

PROBABILITY_FRAC = 15
FLOAT32_BITS = 24  # significand bits of the float32 weights


class TreeEnsembleClassifier:
    """ai.onnx.ml tree ensemble classification (random forests, gradient boosting): class scores by the
    exact integer walk and sums of _trees.py; a binary ensemble (one class id) as the reference gives it:
    [1 - s, s] (post_transform NONE) or [-s, s] (LOGISTIC, SOFTMAX). Labels: classlabels_int64s at the
    argmax of those exact scores (the transforms keep the order), the first class on a tie. A tie is within
    `tie` = 2**-23 * the largest score: the float32 leaf weights are the model's (a forest's vote fractions
    1/n) rounded to 24 bits, so two classes whose votes tie may differ by that much in their sums, and
    onnxruntime and scikit-learn give such a tie to the first class. Scores output: requantized to its
    calibrated frac (NONE), or the scores at a 16-bit frac through the sigmoid table (LOGISTIC) or the
    integer softmax (SOFTMAX) at 2**-15. String labels, SOFTMAX_ZERO and PROBIT are refused."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        labels = ctx.attr("classlabels_int64s")
        if labels is None or len(labels) < 2:
            ctx.unsupported("needs at least two integer class labels (classlabels_int64s)")
        transform = ctx.attr("post_transform", "NONE")
        transform = transform.decode() if isinstance(transform, bytes) else transform
        if transform not in ("NONE", "LOGISTIC", "SOFTMAX"):
            ctx.unsupported(f"post_transform {transform!r}")
        attrs, consts, largest = lower_trees(ctx, len(labels), "class")
        consts["labels"] = np.asarray(labels, np.int64)
        attrs.update(transform=transform, binary=int(len(set(ctx.attr("class_ids"))) == 1))
        if attrs["binary"]:
            attrs["binary_class"] = int(ctx.attr("class_ids")[0])
        attrs["score_frac"] = frac_for_range(largest)  # the 16-bit scale the transforms read
        attrs["tie"] = int(np.ceil(largest * 2.0 ** (attrs["weight_frac"] - FLOAT32_BITS + 1)))
        if transform == "NONE":
            attrs["out_frac"] = ctx.out_frac(1) if len(ctx.output_names) > 1 and ctx.output_names[1] else 0
        else:
            attrs["out_frac"] = PROBABILITY_FRAC
        if transform == "LOGISTIC":
            attrs["lo"], consts["sigmoid"] = build_table(sigmoid, attrs["score_frac"], PROBABILITY_FRAC)
        return Lowering(out_fracs=[None, attrs["out_frac"]][:len(ctx.output_names)], attrs=attrs, consts=consts)

    @staticmethod
    def run(inputs, attrs, consts):
        total = scores(inputs[0], attrs, consts)
        if attrs["binary"]:  # one score s (the only class id's column), as [1 - s, s] or [-s, s]
            score = total[:, attrs["binary_class"]]
            other = (1 << attrs["weight_frac"]) - score if attrs["transform"] == "NONE" else -score
            total = np.stack([other, score], axis=1)
        tied = total >= total.max(axis=1, keepdims=True) - attrs.get("tie", 0)
        labels = consts["labels"][np.argmax(tied, axis=1)]  # (the first True: the first of the tied classes)
        if attrs["transform"] == "NONE":
            return [labels, requantize(total, attrs["weight_frac"], attrs["out_frac"])]
        narrow = requantize(total, attrs["weight_frac"], attrs["score_frac"], ACT_BITS)
        if attrs["transform"] == "LOGISTIC":
            return [labels, apply_table(narrow, attrs["lo"], consts["sigmoid"])]
        return [labels, softmax(narrow, attrs["score_frac"], 1, PROBABILITY_FRAC)]

    cost = staticmethod(TreeEnsembleRegressor.cost)
