"""Part of pass 1: the ai.onnx.ml ops scikit-learn pipelines export (skl2onnx) that are standard ops in
disguise are rewritten into them, so they lower with those ops' integer semantics:

    Scaler            (x - offset) * scale                       Sub, Mul
    Normalizer        x / max|x|, x / sum|x|, x / ||x||_2        Abs, ReduceMax, Div; LpNormalization
    Binarizer         x > threshold ? 1 : 0                      Greater, Where
    Imputer           x == replaced ? imputed[feature] : x       Equal, Where (NaN: Identity, as no NaN enters)
    LinearRegressor   x @ coefficients^T + intercepts            Gemm
    LinearClassifier  the scores of a Gemm (a binary one as [-s, s]), post-transformed (none, logistic,
                      softmax); labels = classlabels_ints[argmax]  Gemm, Neg, Concat, Sigmoid / Softmax,
                                                                 ArgMax, Gather

    SVMRegressor, SVMClassifier    kernels, one-vs-one votes (svm.py)

Other ml ops (TreeEnsemble*, ArrayFeatureExtractor, OneHotEncoder, LabelEncoder) have their own lowering; the
rest are refused by name.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.compiler.svm import svm_classifier, svm_regressor
from verifier.errors import UnsupportedOpError

ML_DOMAIN = "ai.onnx.ml"


def rewrite_ml_ops(model: onnx.ModelProto, opset: int) -> None:
    """In place: every rewritable ai.onnx.ml node replaced by its standard ops (same output names)."""
    rewritten = []
    for node in model.graph.node:
        rewrite = REWRITES.get(node.op_type) if node.domain == ML_DOMAIN else None
        if rewrite is None:
            rewritten.append(node)
            continue
        builder = _Builder(model, node)
        rewrite(builder, {a.name: helper.get_attribute_value(a) for a in node.attribute}, opset)
        rewritten.extend(builder.nodes)
    del model.graph.node[:]
    model.graph.node.extend(rewritten)


class _Builder:
    """New nodes and constants for one ml node, named after it."""

    def __init__(self, model: onnx.ModelProto, node: onnx.NodeProto):
        self.model, self.node, self.nodes, self.count = model, node, [], 0

    def const(self, value) -> str:
        name = self._name("const")
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list, output: str | None = None, **attrs) -> str:
        output = output or self._name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self._name(op_type), **attrs))
        return output

    def refuse(self, reason: str, opset: int):
        name = self.node.name or self.node.output[0]
        raise UnsupportedOpError(f"{ML_DOMAIN}.{self.node.op_type}", name, opset, reason)

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{self.node.name or self.node.output[0]}/{what}{self.count}"


def _scaler(b: _Builder, attrs: dict, opset: int) -> None:
    x = b.op("Cast", [b.node.input[0]], to=onnx.TensorProto.FLOAT)
    shifted = b.op("Sub", [x, b.const(np.asarray(attrs.get("offset", [0.0]), np.float32))])
    b.op("Mul", [shifted, b.const(np.asarray(attrs.get("scale", [1.0]), np.float32))], b.node.output[0])


def _normalizer(b: _Builder, attrs: dict, opset: int) -> None:
    norm = attrs.get("norm", b"MAX")
    norm = norm.decode() if isinstance(norm, bytes) else norm
    x = b.op("Cast", [b.node.input[0]], to=onnx.TensorProto.FLOAT)
    if norm in ("L1", "L2"):
        b.op("LpNormalization", [x], b.node.output[0], axis=1, p=int(norm[1]))
    elif norm == "MAX":
        largest = b.op("ReduceMax", [b.op("Abs", [x])], axes=[1], keepdims=1)
        b.op("Div", [x, largest], b.node.output[0])
    else:
        b.refuse(f"norm {norm!r}", opset)


def _binarizer(b: _Builder, attrs: dict, opset: int) -> None:
    above = b.op("Greater", [b.node.input[0], b.const(np.float32(attrs.get("threshold", 0.0)))])
    b.op("Where", [above, b.const(np.float32(1.0)), b.const(np.float32(0.0))], b.node.output[0])


def _imputer(b: _Builder, attrs: dict, opset: int) -> None:
    floats = attrs.get("imputed_value_floats")
    values = np.asarray(floats if floats else attrs.get("imputed_value_int64s", []),
                        np.float32 if floats else np.int64)
    replaced = float(attrs.get("replaced_value_float", 0.0)) if floats else int(attrs.get("replaced_value_int64", 0))
    if values.size == 0:
        b.refuse("no imputed values", opset)
    if floats and np.isnan(replaced):  # no NaN enters a program (feeds refuse it, naming the input): nothing to replace
        b.op("Identity", [b.node.input[0]], b.node.output[0])
        return
    missing = b.op("Equal", [b.node.input[0], b.const(np.asarray(replaced, values.dtype))])
    b.op("Where", [missing, b.const(values), b.node.input[0]], b.node.output[0])


def _linear_scores(b: _Builder, attrs: dict, rows: int) -> str:
    coefficients = np.asarray(attrs["coefficients"], np.float32).reshape(rows, -1)
    intercepts = np.asarray(attrs.get("intercepts", [0.0] * rows), np.float32)
    x = b.op("Cast", [b.node.input[0]], to=onnx.TensorProto.FLOAT)
    return b.op("Gemm", [x, b.const(coefficients), b.const(intercepts)], transB=1)


def _post_transform(attrs: dict) -> str:
    transform = attrs.get("post_transform", b"NONE")
    return transform.decode() if isinstance(transform, bytes) else transform


def _linear_regressor(b: _Builder, attrs: dict, opset: int) -> None:
    if _post_transform(attrs) != "NONE":
        b.refuse(f"post_transform {_post_transform(attrs)!r}", opset)
    scores = _linear_scores(b, attrs, int(attrs.get("targets", 1)))
    b.op("Identity", [scores], b.node.output[0])


def _linear_classifier(b: _Builder, attrs: dict, opset: int) -> None:
    labels = attrs.get("classlabels_ints")
    if labels is None:
        b.refuse("string class labels (only classlabels_ints)", opset)
    transform = _post_transform(attrs)
    if transform not in ("NONE", "LOGISTIC", "SOFTMAX"):
        b.refuse(f"post_transform {transform!r}", opset)
    rows = len(attrs.get("intercepts", [])) or (1 if len(labels) == 2 else len(labels))  # (one row per class)
    scores = _linear_scores(b, attrs, rows)
    if rows == 1 and len(labels) == 2:  # binary: one score s, as [-s, s]
        scores = b.op("Concat", [b.op("Neg", [scores]), scores], axis=1)
    if transform != "NONE":
        scores = b.op("Sigmoid" if transform == "LOGISTIC" else "Softmax", [scores], **(
            {"axis": 1} if transform == "SOFTMAX" else {}))
    if len(b.node.output) > 1 and b.node.output[1]:
        b.op("Identity", [scores], b.node.output[1])
    best = b.op("ArgMax", [scores], axis=1, keepdims=0)
    b.op("Gather", [b.const(np.asarray(labels, np.int64)), best], b.node.output[0], axis=0)


REWRITES = {"Scaler": _scaler, "Normalizer": _normalizer, "Binarizer": _binarizer, "Imputer": _imputer,
            "LinearRegressor": _linear_regressor, "LinearClassifier": _linear_classifier,
            "SVMRegressor": svm_regressor, "SVMClassifier": svm_classifier}
