"""Pass 3: fold per-channel affine maps into the node before them, in float, at compile time: an
inference-time BatchNormalization, and a Mul, Div, Add or Sub by a constant that is one value per channel
(or a single value: a Caffe2 model's Scale layer after its BatchNorm, a LayerScale), into the Conv or Gemm
that feeds it (its weights and bias), or into the BatchNormalization that feeds it (its gamma and beta),
when that producer has constant parameters and feeds nothing else. A chain folds one map at a time, so
Conv -> BatchNormalization -> Mul -> Add becomes one Conv. What cannot be folded stays as it is (a
BatchNormalization is then lowered as a per-channel integer affine map)."""

from __future__ import annotations

import numpy as np

from verifier.compiler.load import Graph, attribute

AFFINE_OPS = ("BatchNormalization", "Mul", "Div", "Add", "Sub")


def fold_batchnorm(graph: Graph) -> Graph:
    consumers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer = {o: node for node in graph.nodes for o in node.output}
    removed = set()
    for node in graph.nodes:
        if node.op_type not in AFFINE_OPS or len(node.output) > 1 and any(node.output[1:]):
            continue
        found = _affine(node, graph)
        if found is None:
            continue
        operand, scale, shift = found
        source = producer.get(operand)
        if source is None or consumers.get(operand) != 1 or operand in graph.outputs or len(source.output) != 1:
            continue
        if source.op_type == "Conv" and _fold_into_conv(source, scale, shift, graph):
            pass
        elif source.op_type == "Gemm" and _fold_into_gemm(source, scale, shift, graph):
            pass
        elif source.op_type == "BatchNormalization" and _fold_into_batchnorm(source, scale, shift, graph):
            pass
        else:
            continue
        source.output[0] = node.output[0]
        producer[node.output[0]] = source
        removed.add(id(node))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    return graph


def _affine(node, graph: Graph):
    """(run-time operand, scale, shift) with node(x) = x * scale + shift per channel (axis 1; scale and shift
    float64 vectors, or of size 1 for every channel), or None when the node is not such a map."""
    if node.op_type == "BatchNormalization":
        params = [graph.constants.get(n) for n in node.input[1:5]]
        if any(p is None for p in params) or attribute(node, "training_mode", 0):
            return None
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
        scale = gamma / np.sqrt(var + attribute(node, "epsilon", 1e-5))
        return node.input[0], scale, beta - mean * scale
    if len(node.input) != 2:
        return None
    constant = [name in graph.constants for name in node.input]
    if constant == [False, True]:
        operand, value = node.input[0], graph.constants[node.input[1]]
    elif constant == [True, False] and node.op_type in ("Mul", "Add"):  # (commutative)
        operand, value = node.input[1], graph.constants[node.input[0]]
    else:
        return None
    per_channel = _per_channel(value, graph.shapes.get(operand))
    if per_channel is None or not np.issubdtype(np.asarray(value).dtype, np.floating):
        return None
    zero, one = np.zeros(1), np.ones(1)
    if node.op_type == "Mul":
        return operand, per_channel, zero
    if node.op_type == "Div":
        return (operand, 1.0 / per_channel, zero) if np.all(per_channel != 0) else None
    return operand, one, (per_channel if node.op_type == "Add" else -per_channel)


def _per_channel(value, operand_shape):
    """value as a float64 vector along axis 1 of an operand of operand_shape (size 1: the same for every
    channel), when it broadcasts against it without changing its shape; else None."""
    value = np.asarray(value)
    if operand_shape is None or len(operand_shape) < 2 or value.ndim > len(operand_shape):
        return None
    shape = (1,) * (len(operand_shape) - value.ndim) + value.shape  # (numpy broadcasting: right-aligned)
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, operand_shape[1]):
        return None
    return value.astype(np.float64).reshape(-1)


def _fold_into_conv(conv, scale, shift, graph: Graph) -> bool:
    weight = graph.constants.get(conv.input[1])
    if weight is None:
        return False
    bias = _bias(conv, 2, weight.shape[0], graph)
    if bias is None or scale.size not in (1, weight.shape[0]) or shift.size not in (1, weight.shape[0]):
        return False
    new_weight = weight.astype(np.float64) * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    _set_params(conv, graph, new_weight.astype(weight.dtype), (bias * scale + shift).astype(weight.dtype))
    return True


def _fold_into_gemm(gemm, scale, shift, graph: Graph) -> bool:
    weight = graph.constants.get(gemm.input[1])
    if (weight is None or weight.ndim != 2 or attribute(gemm, "alpha", 1.0) != 1.0
            or attribute(gemm, "beta", 1.0) != 1.0):
        return False
    trans_b = attribute(gemm, "transB", 0)
    n = weight.shape[0] if trans_b else weight.shape[1]
    bias = _bias(gemm, 2, n, graph)
    if bias is None or bias.shape != (n,) or scale.size not in (1, n) or shift.size not in (1, n):
        return False
    scale = np.broadcast_to(scale, (n,))
    new_weight = weight * (scale[:, None] if trans_b else scale[None, :])
    _set_params(gemm, graph, new_weight.astype(weight.dtype), (bias * scale + shift).astype(weight.dtype))
    return True


def _fold_into_batchnorm(batchnorm, scale, shift, graph: Graph) -> bool:
    """(x - mean) / sqrt(var + eps) * gamma + beta, then * scale + shift: gamma * scale and beta * scale + shift."""
    params = [graph.constants.get(n) for n in batchnorm.input[1:3]]
    if any(p is None for p in params) or attribute(batchnorm, "training_mode", 0):
        return False
    gamma, beta = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
    if scale.size not in (1, gamma.size) or shift.size not in (1, gamma.size):
        return False
    dtype = np.asarray(params[0]).dtype
    for index, value in ((1, gamma * scale), (2, beta * scale + shift)):
        name = f"{batchnorm.name or batchnorm.output[0]}/affine_folded_{index}"
        graph.constants[name] = value.astype(dtype)
        graph.shapes[name] = value.shape
        batchnorm.input[index] = name
    return True


def _bias(node, index: int, channels: int, graph: Graph):
    if len(node.input) <= index or not node.input[index]:
        return np.zeros(channels)
    bias = graph.constants.get(node.input[index])
    if bias is None:
        return None
    return np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(-1) if bias.size in (1, channels) else bias,
                           (channels,)).astype(np.float64) if bias.size in (1, channels) else None


def _set_params(node, graph: Graph, weight, bias) -> None:
    weight_name, bias_name = f"{node.name}/bn_folded_weight", f"{node.name}/bn_folded_bias"
    graph.constants[weight_name], graph.constants[bias_name] = weight, bias
    graph.shapes[weight_name], graph.shapes[bias_name] = weight.shape, bias.shape
    node.input[1] = weight_name
    if len(node.input) > 2:
        node.input[2] = bias_name
    else:
        node.input.append(bias_name)
