"""Pass 3: fold inference-time BatchNormalization into the Conv or Gemm that feeds it, when that producer
has constant weights and feeds nothing else. What cannot be folded stays a BatchNormalization node
(lowered as a per-channel integer affine map)."""

from __future__ import annotations

import numpy as np

from verifier.compiler.load import Graph, attribute


def fold_batchnorm(graph: Graph) -> Graph:
    consumers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer = {o: node for node in graph.nodes for o in node.output}
    removed = set()
    for node in graph.nodes:
        if node.op_type != "BatchNormalization" or len(node.output) > 1 and any(node.output[1:]):
            continue
        source = producer.get(node.input[0])
        if source is None or consumers.get(node.input[0]) != 1 or node.input[0] in graph.outputs:
            continue
        params = [graph.constants.get(n) for n in node.input[1:5]]
        if any(p is None for p in params) or attribute(node, "training_mode", 0):
            continue
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        scale = gamma / np.sqrt(var + attribute(node, "epsilon", 1e-5))
        shift = beta - mean * scale
        if source.op_type == "Conv" and _fold_into_conv(source, scale, shift, graph):
            pass
        elif source.op_type == "Gemm" and _fold_into_gemm(source, scale, shift, graph):
            pass
        else:
            continue
        source.output[0] = node.output[0]
        removed.add(id(node))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    return graph


def _fold_into_conv(conv, scale, shift, graph: Graph) -> bool:
    weight = graph.constants.get(conv.input[1])
    if weight is None:
        return False
    bias = _bias(conv, 2, weight.shape[0], graph)
    if bias is None:
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
    if bias is None or bias.shape != (n,):
        return False
    new_weight = weight * (scale[:, None] if trans_b else scale[None, :])
    _set_params(gemm, graph, new_weight.astype(weight.dtype), (bias * scale + shift).astype(weight.dtype))
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


