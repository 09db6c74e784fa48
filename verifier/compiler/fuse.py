"""Pass 6: fuse a Relu into the node that produces its input (Conv, Gemm, MatMul, Add, Sum,
BatchNormalization) when that node feeds nothing else. The producer gets attr "relu": 1 and the
interpreter applies max(y, 0) to its output: the same integers as the separate Relu (which keeps the
frac), one pass and one node fewer."""

from __future__ import annotations

from verifier.program import Program

FUSABLE = {"Conv", "Gemm", "MatMul", "Add", "Sum", "BatchNormalization"}


def fuse_relu(program: Program) -> Program:
    consumers: dict[str, int] = {}
    for node in program.nodes:
        for name in node.inputs:
            if name:
                consumers[name] = consumers.get(name, 0) + 1
    outputs = {info.name for info in program.outputs}
    producer = {node.outputs[0]: node for node in program.nodes if node.outputs}
    kept = []
    for node in program.nodes:
        source = producer.get(node.inputs[0]) if node.op == "Relu" and node.inputs else None
        if (source is not None and source.op in FUSABLE and len(source.outputs) == 1 and "relu" not in source.attrs
                and consumers.get(source.outputs[0]) == 1 and source.outputs[0] not in outputs):
            source.attrs["relu"] = 1
            program.fracs.pop(source.outputs[0], None)
            source.outputs[0] = node.outputs[0]
            producer[node.outputs[0]] = source
            continue
        kept.append(node)
    program.nodes = kept
    return program
