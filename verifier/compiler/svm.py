"""Part of pass 1 (with ml.py): the support vector machines of ai.onnx.ml, as skl2onnx exports SVC and SVR,
rewritten into standard ops with the reference's semantics (onnx.reference's SVMClassifier/SVMRegressor):

    kernel K(x, v)   LINEAR x.v    POLY (g x.v + c)^d    RBF exp(-g |x - v|^2)    SIGMOID tanh(g x.v + c)
                     MatMul        MatMul, Mul, Add, Pow  Sub, ReduceSumSquare, Mul, Exp   MatMul, Mul, Add, Tanh
    SVMRegressor     K @ coefficients + rho (one_class: 1 where that is > 0, else -1)        MatMul, Add, Where
    SVMClassifier    one-vs-one: pair (i, j)'s decision s = K @ C[:, pair] + rho[pair] (C holds class i's support
                     vectors' coefficients for j and class j's for i), a vote for i where s > 0, else for j;
                     label = classlabels_ints[argmax votes] (the first on a tie); scores = the decisions,
                     a binary classifier's as [-s, s]                           MatMul, Greater, Cast, ArgMax, Gather

Probability estimates (prob_a, prob_b: an iterative pairwise coupling in float) and string labels are refused.
"""

from __future__ import annotations

import numpy as np
import onnx


def svm_regressor(b, attrs: dict, opset: int) -> None:
    if _text(attrs.get("post_transform", b"NONE")) != "NONE":
        b.refuse(f"post_transform {_text(attrs['post_transform'])!r}", opset)
    x = b.op("Cast", [b.node.input[0]], to=onnx.TensorProto.FLOAT)
    coefficients = np.asarray(attrs["coefficients"], np.float32)
    supports = int(attrs.get("n_supports", 0))
    if supports > 0:
        vectors = np.asarray(attrs["support_vectors"], np.float32).reshape(supports, -1)
        x = _kernel(b, attrs, x, vectors, opset)
    score = b.op("Add", [b.op("MatMul", [x, b.const(coefficients.reshape(-1, 1))]),
                         b.const(np.asarray(attrs["rho"][:1], np.float32))])
    if attrs.get("one_class", 0):
        positive = b.op("Greater", [score, b.const(np.float32(0.0))])
        b.op("Where", [positive, b.const(np.float32(1.0)), b.const(np.float32(-1.0))], b.node.output[0])
    else:
        b.op("Identity", [score], b.node.output[0])


def svm_classifier(b, attrs: dict, opset: int) -> None:
    labels = attrs.get("classlabels_ints")
    if labels is None:
        b.refuse("string class labels (only classlabels_ints)", opset)
    if attrs.get("prob_a"):
        b.refuse("probability estimates (prob_a, prob_b: pairwise coupling, an iterative float algorithm); "
                 "export the SVC with probability=False", opset)
    if _text(attrs.get("post_transform", b"NONE")) != "NONE":
        b.refuse(f"post_transform {_text(attrs['post_transform'])!r}", opset)
    per_class = [int(v) for v in attrs.get("vectors_per_class", [])]
    classes, supports = len(labels), sum(per_class)
    if supports == 0 or len(per_class) != classes:
        b.refuse("a classifier without support vectors (linear mode)", opset)
    vectors = np.asarray(attrs["support_vectors"], np.float32).reshape(supports, -1)
    coefficients = np.asarray(attrs["coefficients"], np.float32).reshape(classes - 1, supports)
    starts = np.concatenate([[0], np.cumsum(per_class)])
    pairs = [(i, j) for i in range(classes) for j in range(i + 1, classes)]
    combined = np.zeros((supports, len(pairs)), np.float32)  # pair (i, j)'s decision is K @ combined[:, pair]
    first, second = np.zeros((len(pairs), classes), np.float32), np.zeros((len(pairs), classes), np.float32)
    for pair, (i, j) in enumerate(pairs):
        combined[starts[i]:starts[i + 1], pair] = coefficients[j - 1, starts[i]:starts[i + 1]]
        combined[starts[j]:starts[j + 1], pair] = coefficients[i, starts[j]:starts[j + 1]]
        first[pair, i], second[pair, j] = 1.0, 1.0
    kernel = _kernel(b, attrs, b.op("Cast", [b.node.input[0]], to=onnx.TensorProto.FLOAT), vectors, opset)
    decisions = b.op("Add", [b.op("MatMul", [kernel, b.const(combined)]),
                             b.const(np.asarray(attrs["rho"], np.float32)[:len(pairs)])])
    won = b.op("Cast", [b.op("Greater", [decisions, b.const(np.float32(0.0))])], to=onnx.TensorProto.FLOAT)
    # votes = won @ first + (1 - won) @ second: exact small integers in every op
    votes = b.op("Add", [b.op("MatMul", [won, b.const(first - second)]), b.const(second.sum(axis=0))])
    best = b.op("ArgMax", [votes], axis=1, keepdims=0)
    if len(pairs) == 1 and bool(np.all(coefficients >= 0)):  # the reference's binary rule: with all weights
        # positive its one vote (>= 0.5) always means the second label
        best = b.op("Add", [b.op("Mul", [best, b.const(np.int64(0))]), b.const(np.int64(1))])
    b.op("Gather", [b.const(np.asarray(labels, np.int64)), best], b.node.output[0], axis=0)
    if len(b.node.output) > 1 and b.node.output[1]:
        scores = b.op("Concat", [b.op("Neg", [decisions]), decisions], axis=1) if len(pairs) == 1 else decisions
        b.op("Identity", [scores], b.node.output[1])


def _kernel(b, attrs: dict, x: str, vectors: np.ndarray, opset: int) -> str:
    """K(x, v) for every row of x and support vector v: (N, V)."""
    kind = _text(attrs.get("kernel_type", b"LINEAR"))
    gamma, coef0, degree = (list(attrs.get("kernel_params", [])) + [0.0, 0.0, 0.0])[:3]
    if kind == "RBF":
        rows = (b.op("Unsqueeze", [x, b.const(np.array([1], np.int64))]) if opset >= 13 else
                b.op("Unsqueeze", [x], axes=[1]))
        difference = b.op("Sub", [rows, b.const(vectors)])  # (N, V, F)
        squared = (b.op("ReduceSumSquare", [difference, b.const(np.array([2], np.int64))], keepdims=0) if opset >= 18
                   else b.op("ReduceSumSquare", [difference], axes=[2], keepdims=0))
        return b.op("Exp", [b.op("Mul", [squared, b.const(np.float32(-gamma))])])
    dot = b.op("MatMul", [x, b.const(np.ascontiguousarray(vectors.T))])
    if kind == "LINEAR":
        return dot
    inner = b.op("Add", [b.op("Mul", [dot, b.const(np.float32(gamma))]), b.const(np.float32(coef0))])
    if kind == "POLY":
        return b.op("Pow", [inner, b.const(np.float32(degree))])
    if kind == "SIGMOID":
        return b.op("Tanh", [inner])
    b.refuse(f"kernel_type {kind!r}", opset)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
