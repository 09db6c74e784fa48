"""Pass 3b: per-feature input scales. A float input whose features (its last axis) span very different
magnitudes - raw tabular data, a floor area in thousands beside a ratio below one - would lose its small
features to the one scale a tensor has: at the scale the largest feature needs, a feature that never passes
0.2 keeps two or three bits, and a tree that splits on it routes wrongly.

Here such an input is quantized feature by feature: feature f is read at frac + shift[f], i.e. the program
sees x' = x * 2**shift[f], whose features all span about the same range. The scaling is undone exactly (it is
a power of two) inside the ops that read the input, in their constants:

    Gemm / MatMul (x @ B, B constant)     B's row f divided by 2**shift[f]           undone
    Mul / Div by a constant               the constant divided / multiplied by it    undone
    Add / Sub of a constant               the constant multiplied by it              passed on to the result
    Where(c, x, constant)                 the constant multiplied by it              passed on to the result
    Equal, Greater, ... with a constant   the constant multiplied by it              undone (a boolean)
    Relu, a Transpose keeping the last    (commute with a positive per-feature       passed on to the result
    axis last, Identity, float Casts       scale)
    Shape, Size                           (read no value)
    ArrayFeatureExtractor, Gather on the  (a ColumnTransformer's columns)            the chosen features' factors
    last axis, constant indices                                                      passed on
    TreeEnsemble* (ai.onnx.ml)            feature f's thresholds multiplied by it    undone
    RNN / GRU / LSTM (x the sequence)     W's column f divided by it                 undone
    BatchNormalization of (N, features)   the scale divided, the mean multiplied     undone

so a scikit-learn pipeline's Scaler (Sub, Mul), a linear model, PCA or a tree reads full-precision features. An
input read by any other op, or passed on to a graph output, keeps its one scale. The shifts are part of the
program's input (TensorInfo.feature_shifts): the requester's quantization applies them, the integers the
workers receive are already scaled.

Only features that are consistently small are shifted: a feature non-zero in at most half of the calibration
samples (a border pixel of a flattened image) may well be large in the next sample, and keeps the shared
scale. A shifted feature keeps HEADROOM_BITS of range above its calibrated maximum. An integer-valued feature
(a category, a count) is shifted only as far as keeping it exact needs (none while the input's frac is >= 0),
and a reader of features whose factors are all 1 needs no rewrite: a categorical column can reach a Cast to
int64 or a OneHotEncoder.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from verifier.compiler.load import Graph, attribute
from verifier.compiler.ranges import HEADROOM as RANGE_HEADROOM
from verifier.fixedpoint import frac_for_range
from verifier.program import MAX_FEATURE_SHIFT

SPREAD_BITS = 6  # features whose ranges differ by less than 2**6 share the input's one scale unchanged
HEADROOM_BITS = 3  # a shifted feature's range is 8x its calibrated maximum (on top of the 1.5x every range has)
DENSE = 0.5  # the share of calibration samples in which a feature must be non-zero to be shifted
EXACT_CASTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)  # a power-of-two factor survives these casts
RECURRENT = ("RNN", "GRU", "LSTM")
COMPARISONS = ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual")
TREES = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")


def scale_input_features(graph: Graph, calibration: dict | None) -> dict | None:
    """Chooses and applies per-feature shifts for the graph's float inputs (in place: the graph's input now
    means x * 2**shift, graph.feature_shifts records the shifts). Returns the calibration scaled the same way."""
    if calibration is None:
        return None
    scaled = dict(calibration)
    for name, shape, dtype in graph.inputs:
        if np.dtype(dtype).kind != "f" or name not in calibration or not shape or len(shape) < 2:
            continue
        shift = _shifts(np.asarray(calibration[name], dtype=np.float64))
        if shift is None or not _absorb(graph, name, 2.0 ** -shift):
            continue
        graph.feature_shifts[name] = tuple(int(s) for s in shift)
        samples = np.asarray(calibration[name])
        scaled[name] = (samples * 2.0**shift).astype(samples.dtype)
    return scaled


def _shifts(samples: np.ndarray) -> np.ndarray | None:
    """Per feature of the last axis: the extra fraction bits that bring a consistently small feature within
    HEADROOM_BITS of the largest one; None when no feature is SPREAD_BITS below it."""
    features = samples.reshape(-1, samples.shape[-1])
    if features.shape[0] == 0 or not np.isfinite(features).all():
        return None
    largest = np.abs(features).max(axis=0)
    dense = (features != 0).mean(axis=0) > DENSE
    top = largest.max()
    if top == 0:
        return None
    with np.errstate(divide="ignore", over="ignore"):  # (a subnormal maximum: an infinite ratio, clipped)
        below = np.floor(np.log2(top / np.where(dense & (largest > 0), largest, top)))
    if below.max() < SPREAD_BITS:
        return None
    shift = np.clip(below - HEADROOM_BITS, 0, MAX_FEATURE_SHIFT).astype(np.int64)
    # integer features (categories, counts) are exact at any frac >= 0: shifted only as far as that needs,
    # so they stay unscaled - and categorical readers (a Cast to int64, a OneHotEncoder) need no rewrite
    integers = np.all(features == np.round(features), axis=0)
    exact = max(0, -frac_for_range(top * RANGE_HEADROOM))
    return np.where(integers, np.minimum(shift, exact), shift)


def _absorb(graph: Graph, name: str, factor: np.ndarray) -> bool:
    """Rewrites every reader of `name` (which now holds x / factor, per feature) so the graph computes what it
    did; returns False, changing nothing, when a reader cannot take the factor."""
    replaced: dict[int, object] = {}  # node index -> its rewritten NodeProto
    constants: dict[str, np.ndarray] = {}
    pending = [(name, factor)]
    while pending:
        tensor, factor = pending.pop()
        if tensor in graph.outputs:
            return False
        for index, node in enumerate(graph.nodes):
            if tensor not in node.input:
                continue
            if index in replaced or list(node.input).count(tensor) > 1:
                return False
            rewritten = _rewrite(graph, node, tensor, factor, constants)
            if rewritten is None:
                return False
            replaced[index], passed_on = rewritten
            if passed_on is True:
                passed_on = factor
            if passed_on is not False and not np.all(passed_on == 1.0):  # (an unscaled selection reads as it did)
                pending.append((node.output[0], passed_on))
    graph.constants.update(constants)
    for index, node in replaced.items():
        graph.nodes[index] = node
    return True


def _rewrite(graph: Graph, node, tensor: str, factor: np.ndarray, constants: dict):
    """(the node reading x' = x / factor instead of x, whether its output is still divided by factor), or None."""
    position = list(node.input).index(tensor)
    other = [n for i, n in enumerate(node.input) if i != position and n]
    constant = graph.constants.get(other[0]) if len(other) == 1 else None
    op = node.op_type
    if op in ("Shape", "Size"):
        return node, False  # (reads no value)
    selected = _selected_features(graph, node, tensor, position)
    if selected is not None:  # the chosen features carry their own factors on
        return node, factor[selected]
    if op == "Relu" or op == "Identity" or op == "Cast" and attribute(node, "to") in EXACT_CASTS:
        return node, True
    perm = list(attribute(node, "perm") or []) if op == "Transpose" else []
    if perm and perm[-1] == len(perm) - 1:
        return node, True  # (the features stay the last axis)
    if op in TREES and node.domain == "ai.onnx.ml" and position == 0:
        rewritten = _scaled_thresholds(node, factor)
        return None if rewritten is None else (rewritten, False)
    if op in ("Gemm", "MatMul") and position == 0:
        weights = graph.constants.get(node.input[1])
        if weights is None or np.asarray(weights).ndim != 2 or attribute(node, "transA", 0):
            return None
        rows = factor[None, :] if attribute(node, "transB", 0) else factor[:, None]
        return _with_constant(node, 1, np.asarray(weights) * rows, constants), False
    if op in RECURRENT and position == 0:  # x @ W^T per step: W (directions, gates * hidden, features)
        weights = graph.constants.get(node.input[1])
        return None if weights is None else (_with_constant(node, 1, np.asarray(weights) * factor, constants), False)
    if op == "BatchNormalization" and position == 0 and len(graph.shapes.get(tensor) or ()) == 2:
        # (x' f - mean) gamma / sqrt(var + eps) = (x' - mean / f) (f gamma) / sqrt(var + eps): features = channels
        scale, mean = graph.constants.get(node.input[1]), graph.constants.get(node.input[3])
        if scale is None or mean is None:
            return None
        node = _with_constant(node, 1, np.asarray(scale) * factor, constants)
        return _with_constant(node, 3, np.asarray(mean) / factor, constants), False
    if op == "Where" and position in (1, 2):  # a value branch; the other one a constant
        value = graph.constants.get(node.input[3 - position])
        if value is None or np.asarray(value).dtype.kind != "f" or node.input[0] == tensor:
            return None
        return _with_constant(node, 3 - position, np.asarray(value) / factor, constants), True
    if constant is None or np.asarray(constant).dtype.kind != "f" or len(node.input) != 2:
        return None
    constant = np.asarray(constant)
    if constant.ndim and constant.shape[-1] not in (1, factor.size):
        return None
    if op == "Mul":
        return _with_constant(node, 1 - position, constant * factor, constants), False
    if op == "Div" and position == 0:
        return _with_constant(node, 1, constant / factor, constants), False
    if op in ("Add", "Sub"):
        return _with_constant(node, 1 - position, constant / factor, constants), True
    if op in COMPARISONS:  # x < c  <=>  x' < c / factor (exact: a power of two)
        return _with_constant(node, 1 - position, constant / factor, constants), False
    return None


def _selected_features(graph: Graph, node, tensor: str, position: int) -> np.ndarray | None:
    """The feature indices an ArrayFeatureExtractor, or a Gather on the last axis, takes from `tensor` with
    constant indices (a ColumnTransformer's column selection); None for any other reader."""
    if position != 0 or len(node.input) < 2 or node.input[1] not in graph.constants:
        return None
    indices = np.asarray(graph.constants[node.input[1]])
    shape = graph.shapes.get(tensor) or (None,)
    features, rank = shape[-1], len(shape)
    if features is None or indices.dtype.kind not in "iu" or (
            indices.size and not -features <= indices.min() <= indices.max() < features):
        return None
    if node.op_type == "ArrayFeatureExtractor" and node.domain == "ai.onnx.ml":
        return indices.reshape(-1).astype(np.int64)
    if node.op_type == "Gather" and indices.ndim == 1 and (attribute(node, "axis") or 0) % rank == rank - 1:
        return indices.astype(np.int64)
    return None


def _with_constant(node, position: int, value: np.ndarray, constants: dict):
    name = f"{node.input[position]}__feature_scaled_{node.name or node.output[0]}"
    constants[name] = value.astype(np.float32) if value.dtype == np.float64 else value
    inputs = list(node.input)
    inputs[position] = name
    rewritten = helper.make_node(node.op_type, inputs, list(node.output), name=node.name, domain=node.domain)
    rewritten.attribute.extend(node.attribute)
    return rewritten


def _scaled_thresholds(node, factor: np.ndarray):
    """x < t  <=>  x / factor < t / factor: each node's threshold over its feature's factor (exact: a power of 2)."""
    features = np.asarray(attribute(node, "nodes_featureids", []), dtype=np.int64)
    if features.size and (features.min() < 0 or features.max() >= factor.size):
        return None
    rewritten = helper.make_node(node.op_type, list(node.input), list(node.output), name=node.name, domain=node.domain)
    for item in node.attribute:
        if item.name == "nodes_values":
            values = np.asarray(attribute(node, "nodes_values"), dtype=np.float32) / factor[features].astype(np.float32)
            rewritten.attribute.append(helper.make_attribute("nodes_values", values.tolist()))
        elif item.name == "nodes_values_as_tensor":
            return None
        else:
            rewritten.attribute.append(item)
    return rewritten
