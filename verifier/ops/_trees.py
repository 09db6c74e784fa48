"""Shared by TreeEnsembleRegressor and TreeEnsembleClassifier (ai.onnx.ml, as skl2onnx exports random forests
and gradient boosting): the trees as flat integer tables and their evaluation, exactly.

Compile time: every node's comparison of the fixed-point feature q (frac fx) with its float32 threshold t
becomes a comparison of integers that gives the same answer as the real one (x <= t iff q <= floor(t 2**fx),
x < t iff q < ceil(t 2**fx), ...; x == t only when t 2**fx is an integer); each leaf's weights, summed per
target, and the base values are quantized at one wide frac fw (30 significant bits of the largest possible
score). Run time: all rows walk all trees at once, one level per step; the scores are the exact int64 sums
(SUM), their rounded mean (AVERAGE), or the MIN / MAX of the leaves reached.
"""

from __future__ import annotations

import numpy as np

from verifier.fixedpoint import frac_for_range, quantize, rounding_divide
from verifier.ops import CompileContext
from verifier.ops._elementwise import exact_threshold

MODES = {"LEAF": 0, "BRANCH_LEQ": 1, "BRANCH_LT": 2, "BRANCH_GTE": 3, "BRANCH_GT": 4, "BRANCH_EQ": 5, "BRANCH_NEQ": 6}
WEIGHT_BITS = 31  # the score's frac: at least 30 bits for the largest possible |score|,
EXACT_WEIGHT_BITS = 60  # and up to 59 where that holds every leaf weight exactly (int64 sums with room to spare)


def lower_trees(ctx: CompileContext, targets: int, prefix: str) -> tuple[dict, dict, float]:
    """(attrs, consts, the largest possible |score|) of the ensemble; `prefix` names the leaf attributes
    ("target" or "class")."""
    x = ctx.inputs[0]
    x_frac = 0 if x.frac is None else x.frac
    modes = [m.decode() if isinstance(m, bytes) else m for m in ctx.attr("nodes_modes")]
    if any(m not in MODES for m in modes):
        ctx.unsupported(f"node modes {sorted(set(modes) - set(MODES))}")
    tree_ids, node_ids = list(ctx.attr("nodes_treeids")), list(ctx.attr("nodes_nodeids"))
    index = {(t, n): i for i, (t, n) in enumerate(zip(tree_ids, node_ids))}
    true_ids, false_ids = list(ctx.attr("nodes_truenodeids")), list(ctx.attr("nodes_falsenodeids"))
    codes = np.array([MODES[m] for m in modes], dtype=np.int64)
    true_next, false_next = (np.array([index.get((t, n), i) if c else i
                                       for i, (t, n, c) in enumerate(zip(tree_ids, children, codes))])
                             for children in (true_ids, false_ids))
    thresholds = _thresholds(_floats(ctx, "nodes_values", len(modes)), codes, x_frac)
    leaf_weights = np.zeros((len(modes), targets))
    weights = _floats(ctx, f"{prefix}_weights", len(ctx.attr(f"{prefix}_ids")))
    for tree, node, target, weight in zip(ctx.attr(f"{prefix}_treeids"), ctx.attr(f"{prefix}_nodeids"),
                                          ctx.attr(f"{prefix}_ids"), weights):
        leaf_weights[index[tree, node], target] += float(weight)
    base = _floats(ctx, "base_values", targets).astype(np.float64)
    roots = np.array(sorted({min(i for i, t in enumerate(tree_ids) if t == tree) for tree in set(tree_ids)}))
    largest = float(np.abs(base).max(initial=0) + np.abs(leaf_weights).max(axis=0, initial=0).sum() * len(roots))
    weight_frac = _exact_frac(np.concatenate([leaf_weights.ravel(), base]), frac_for_range(largest, WEIGHT_BITS),
                              frac_for_range(largest, EXACT_WEIGHT_BITS))
    consts = {"features": np.asarray(ctx.attr("nodes_featureids"), np.int64), "modes": codes,
              "thresholds": thresholds, "true_next": true_next, "false_next": false_next, "roots": roots,
              "leaf_weights": quantize(leaf_weights, weight_frac, 62), "base": quantize(base, weight_frac, 62)}
    aggregate = ctx.attr("aggregate_function", "SUM")
    aggregate = aggregate.decode() if isinstance(aggregate, bytes) else aggregate
    if aggregate not in ("SUM", "AVERAGE", "MIN", "MAX"):
        ctx.unsupported(f"aggregate_function {aggregate!r}")
    return {"weight_frac": weight_frac, "aggregate": aggregate}, consts, largest


def _exact_frac(weights: np.ndarray, lowest: int, highest: int) -> int:
    """The smallest frac from `lowest` up to `highest` at which every weight is an integer: then the integer
    sums are the exact sums of the model's float32 weights, and a tie between classes (a random forest's
    even vote) stays a tie, broken as onnxruntime breaks it; `highest` when no frac holds them all."""
    weights = weights.astype(np.float64)
    for frac in range(lowest, highest):
        scaled = weights * 2.0**frac
        if np.array_equal(scaled, np.round(scaled)):
            return frac
    return max(lowest, highest)


def _floats(ctx: CompileContext, name: str, size: int) -> np.ndarray:
    """A float attribute as float32, from its list or its _as_tensor form (zeros when absent)."""
    value = ctx.attr(name)
    if value is None:
        value = ctx.attr(f"{name}_as_tensor")
    return np.zeros(size, np.float32) if value is None else np.asarray(value, np.float32).reshape(-1)


def _thresholds(values: np.ndarray, codes: np.ndarray, x_frac: int) -> np.ndarray:
    """The integer each node compares q with, as the comparison ops take a float constant
    (_elementwise.exact_threshold): floor for <= and >, ceil for < and >=, the exact value for == and !=."""
    ceil_modes = (codes == MODES["BRANCH_LT"]) | (codes == MODES["BRANCH_GTE"])
    exact_modes = (codes == MODES["BRANCH_EQ"]) | (codes == MODES["BRANCH_NEQ"])
    return np.select([ceil_modes, exact_modes],
                     [exact_threshold(values, x_frac, "ceil"), exact_threshold(values, x_frac, "exact")],
                     exact_threshold(values, x_frac, "floor"))


def scores(x: np.ndarray, attrs: dict, consts: dict) -> np.ndarray:
    """(rows, targets) scores at frac weight_frac: base + the aggregate of every tree's leaf weights."""
    if x.ndim != 2 or (consts["features"].size and consts["features"].max() >= x.shape[1]):
        raise ValueError(f"TreeEnsemble: input of shape {x.shape} does not have the features the trees read")
    leaves = _leaves(x, consts)  # (rows, trees)
    weights = consts["leaf_weights"][leaves]  # (rows, trees, targets)
    if attrs["aggregate"] == "MIN":
        total = weights.min(axis=1)
    elif attrs["aggregate"] == "MAX":
        total = weights.max(axis=1)
    else:
        total = weights.sum(axis=1)
        if attrs["aggregate"] == "AVERAGE":
            total = rounding_divide(total, max(leaves.shape[1], 1))
    return total + consts["base"]


def _leaves(x: np.ndarray, consts: dict) -> np.ndarray:
    at = np.broadcast_to(consts["roots"], (x.shape[0], consts["roots"].size)).copy()
    rows = np.arange(x.shape[0])[:, None]
    modes, thresholds = consts["modes"], consts["thresholds"]
    for _ in range(modes.size):
        mode = modes[at]
        if not np.any(mode):
            return at
        q, t = x[rows, consts["features"][at]], thresholds[at]
        go_true = np.select([mode == 1, mode == 2, mode == 3, mode == 4, mode == 5, mode == 6],
                            [q <= t, q < t, q >= t, q > t, q == t, q != t], False)
        at = np.where(mode == 0, at, np.where(go_true, consts["true_next"][at], consts["false_next"][at]))
    raise ValueError("TreeEnsemble: a tree does not end in leaves")
