"""Pass 6, on the lowered program: fuse a Relu into the node that produces its input (Conv, Gemm, MatMul, Add,
Sum, BatchNormalization) when that node feeds nothing else. The producer gets attr "relu": 1 and the
interpreter applies max(y, 0) to its output: the same integers as the separate Relu (which keeps the
frac), one pass and one node fewer.

Before it, fuse_matmul_bias: an Add (or Sub) of a constant bias along the last axis after a MatMul of
run-time activations by a constant 2-D weight (torch's Linear on a 3-D input exports as that pair) becomes
the MatMul's bias, added to its accumulator as Gemm's is: one rounding instead of two, one pass fewer.

After it, fuse_max_pool: a 2-D MaxPool that alone reads a Conv's output becomes part of the Conv (attrs "pool"),
which pools a fused product before rounding it: only the pooled values are rounded and written."""

from __future__ import annotations

import numpy as np

from verifier.program import Program

FUSABLE = {"Conv", "Gemm", "MatMul", "Add", "Sum", "BatchNormalization"}
BIAS_LIMIT = 1 << 61  # a bias at the accumulator scale, as Conv's and Gemm's (ops/conv.py BIAS_BITS)


def fuse_matmul_bias(program: Program) -> Program:
    return _merge_into_producers(program, _bias_into_matmul)


def _bias_into_matmul(node, producer, consumers, outputs):
    found = _bias_after_matmul(node, producer, consumers, outputs)
    if found is None:
        return None
    source, bias = found
    source.consts["bias"] = bias
    source.attrs["out_frac"] = node.attrs["out_frac"]
    source.out_fracs = list(node.out_fracs)
    return source


def _bias_after_matmul(node, producer, consumers, outputs):
    """(the MatMul, its bias at the accumulator frac) when `node` is sign * x + k, k one constant value per
    output column of shape (N,), x the output of a MatMul (run-time a @ constant (K, N) b) that feeds
    nothing else, and k moves exactly to the MatMul's finer accumulator frac within BIAS_LIMIT; else None."""
    if node.op not in ("Add", "Sub") or "integer" in node.attrs or len(node.inputs) != 2 or "relu" in node.attrs:
        return None
    runtime = [i for i, name in enumerate(node.inputs) if name]
    if len(runtime) != 1 or node.attrs["signs"][runtime[0]] != 1:
        return None
    x, constant = runtime[0], 1 - runtime[0]
    source = producer.get(node.inputs[x])
    if (source is None or source.op != "MatMul" or len(source.outputs) != 1 or consumers.get(source.outputs[0]) != 1
            or source.outputs[0] in outputs or not source.inputs[0] or source.inputs[1] or "k1" not in source.consts
            or source.consts["k1"].ndim != 2 or {"relu", "out_bits"} & set(source.attrs) or "bias" in source.consts):
        return None
    k = node.consts.get(f"k{constant}")
    if k is None or k.shape != (source.consts["k1"].shape[1],):
        return None
    shift = int(source.attrs["acc_frac"]) - int(node.attrs["acc_frac"])
    if shift < 0:  # (a bias finer than the accumulator would be rounded: not the Add's integers' scale)
        return None
    bias = [int(v) * int(node.attrs["signs"][constant]) << shift for v in k]
    if any(abs(v) >= BIAS_LIMIT for v in bias):
        return None
    return source, np.array(bias, dtype=np.int64)


def fuse_relu(program: Program) -> Program:
    return _merge_into_producers(program, _relu_into)


def _relu_into(node, producer, consumers, outputs):
    source = producer.get(node.inputs[0]) if node.op == "Relu" and node.inputs else None
    if (source is not None and source.op in FUSABLE and len(source.outputs) == 1 and "relu" not in source.attrs
            and consumers.get(source.outputs[0]) == 1 and source.outputs[0] not in outputs):
        source.attrs["relu"] = 1
        return source
    return None


def fuse_max_pool(program: Program) -> Program:
    return _merge_into_producers(program, _pool_into_conv)


def _pool_into_conv(node, producer, consumers, outputs):
    """A 2-D MaxPool (no Indices output) of a 2-D Conv's output that feeds nothing else: the Conv takes its geometry
    (attrs["pool"]) and pools its result (ops/conv.py: a fused product is pooled before its epilogue)."""
    source = producer.get(node.inputs[0]) if node.op == "MaxPool" and node.inputs else None
    if (source is None or source.op != "Conv" or len(source.outputs) != 1 or "pool" in source.attrs
            or consumers.get(source.outputs[0]) != 1 or source.outputs[0] in outputs or any(node.outputs[1:])
            or len(node.attrs["kernel_shape"]) != 2 or len(source.attrs["strides"]) != 2):
        return None
    source.attrs["pool"] = {key: node.attrs[key] for key in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode")}
    return source


def _merge_into_producers(program: Program, merge) -> Program:
    """What both fusions share: a node that merge(node, producer, consumers, outputs) folds into the node producing
    its input (it returns that producer, changed) is dropped, and the producer takes over its output name."""
    consumers: dict[str, int] = {}
    for node in program.nodes:
        for name in node.inputs:
            if name:
                consumers[name] = consumers.get(name, 0) + 1
    outputs = {info.name for info in program.outputs}
    producer = {node.outputs[0]: node for node in program.nodes if node.outputs}
    kept = []
    for node in program.nodes:
        source = merge(node, producer, consumers, outputs)
        if source is not None:
            program.fracs.pop(source.outputs[0], None)
            source.outputs[0] = node.outputs[0]
            producer[node.outputs[0]] = source
            continue
        kept.append(node)
    program.nodes = kept
    return program
