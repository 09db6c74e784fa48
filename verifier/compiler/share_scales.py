"""Pass 4c (after ranges, before lowering): scales chosen for a tensor's readers, not only its own range.

The inputs of a Concat share one scale. A Concat joins its
fixed-point inputs at their smallest frac, so an input at a finer frac is rounded once more at run time
(a requantize pass per input). Instead, each input's producer gets the Concat's range - the largest of
its inputs' - and so picks the Concat's frac itself: its output is rounded once, straight to that
scale, and the Concat only copies.

The range moves back through ops that keep their input's frac (Relu, MaxPool, Flatten, ...) to the node
that chooses one. A tensor is widened only when the path's one consumer needs it and it is no graph
output, so no other reader of a tensor sees a coarser scale than before.

In an 8-bit program (compile_model(..., matmul_bits=8)), a product's output that only ever enters products
is produced at its 8-bit scale (narrow_outputs), so its readers need not narrow it."""

from __future__ import annotations

from verifier.compiler.load import Graph
from verifier.compiler.ranges import Ranges, infinite_tensors

KEEPS_FRAC = {"Relu", "MaxPool", "GlobalMaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
              "Identity", "Dropout"}


def share_concat_scales(graph: Graph, ranges: dict) -> Ranges:
    """`ranges` with every Concat input path widened to the Concat's range (a new Ranges)."""
    consumers: dict[str, int] = {}
    for node in graph.nodes:
        for name in set(node.input):
            if name:
                consumers[name] = consumers.get(name, 0) + 1
    producer = {out: node for node in graph.nodes for out in node.output if out}
    shared = Ranges(ranges, infinite_tensors(ranges))
    for node in graph.nodes:
        if node.op_type != "Concat":
            continue
        inputs = [name for name in node.input if name in shared and name not in graph.constants]
        if len(inputs) < 2:
            continue
        target = max(shared[name] for name in inputs)
        for name in inputs:
            while (consumers.get(name) == 1 and name not in graph.outputs and name in shared
                   and shared[name] < target):
                shared[name] = target
                source = producer.get(name)
                if source is None or source.op_type not in KEEPS_FRAC or not source.input:
                    break
                name = source.input[0]
    return shared


# the operands a product narrows at run time
PRODUCTS = {"Conv": (0,), "ConvTranspose": (0,), "Gemm": (0, 1), "MatMul": (0, 1)}


def narrow_outputs(graph: Graph, matmul_bits: int) -> frozenset:
    """The tensors of an 8-bit program that are produced by a product and only ever enter products (as a
    run-time operand, possibly through Relu, MaxPool, Flatten, ...): their producers emit them at their
    8-bit scale (ops/_operands.output_scale), rounded once, and their readers need not narrow them."""
    if matmul_bits == 16:
        return frozenset()
    readers: dict[str, list] = {}
    for node in graph.nodes:
        for index, name in enumerate(node.input):
            if name:
                readers.setdefault(name, []).append((node, index))

    known: dict[str, bool] = {}

    def only_products(name: str) -> bool:
        if name not in known:
            known[name] = name not in graph.outputs and bool(readers.get(name)) and all(
                (node.op_type in PRODUCTS and index in PRODUCTS[node.op_type])
                or (node.op_type in KEEPS_FRAC and index == 0 and only_products(node.output[0]))
                for node, index in readers[name])
        return known[name]

    return frozenset(out for node in graph.nodes if node.op_type in PRODUCTS
                     for out in node.output[:1] if out and only_products(out))
