"""Pass 4b (after ranges, before lowering): chains of one-input functions whose composition is itself one
table op, fused so the output is rounded once instead of at every link. Today: Log(Sigmoid(x)), torch's
LogSigmoid export, becomes the vinfer op LogSigmoid (verifier/ops/logsigmoid.py), a table of
ln(sigmoid(x)) built from x itself. Unfused, sigmoid(x) is first rounded to 2**-14, which for x far
below 0 (sigmoid a few steps) costs up to ~16 output steps; fused, the error is the table's 0.5 step.

A chain fuses only when the inner output feeds nothing but the outer node and is no graph output; the
fused node keeps the outer node's output name, so its calibrated range is the one the lowering sees."""

from __future__ import annotations

from onnx import helper

from verifier.compiler.load import Graph

FUSED = {("Sigmoid", "Log"): "LogSigmoid"}


def fuse_tables(graph: Graph) -> Graph:
    consumers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.input:
            if name:
                consumers[name] = consumers.get(name, 0) + 1
    producer = {node.output[0]: node for node in graph.nodes if node.output}
    fused_away = set()
    replacement = {}
    for node in graph.nodes:
        inner = producer.get(node.input[0]) if node.input else None
        if inner is None or id(inner) in fused_away:
            continue
        op = FUSED.get((inner.op_type, node.op_type))
        middle = inner.output[0]
        if op is None or consumers.get(middle) != 1 or middle in graph.outputs or middle in graph.constants:
            continue
        fused = helper.make_node(op, [inner.input[0]], [node.output[0]], name=f"{inner.name}+{node.name}")
        fused_away.add(id(inner))
        replacement[id(node)] = fused
    graph.nodes = [replacement.get(id(n), n) for n in graph.nodes if id(n) not in fused_away]
    return graph
