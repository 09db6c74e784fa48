"""Pass 4c (after ranges, before lowering): scales chosen for a tensor's readers, not only its own range.

The inputs of a Concat share one scale. A Concat joins its
fixed-point inputs at their smallest frac, so an input at a finer frac is rounded once more at run time
(a requantize pass per input). Instead, each input's producer gets the Concat's range - the widest on any
input's path, a fused Conv + Relu's Conv range included - and so picks the Concat's frac itself: its output
is rounded once, straight to that scale, and the Concat only copies (and the interpreter can compute Conv
inputs straight into its output).

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

    def chain(name: str) -> list[str]:
        """The tensor and those it keeps the frac of (back through KEEPS_FRAC ops to the node that picks it)."""
        names = [name]
        source = producer.get(name)
        while source is not None and source.op_type in KEEPS_FRAC and source.input and source.input[0] in shared:
            names.append(source.input[0])
            source = producer.get(names[-1])
        return names

    for node in graph.nodes:
        if node.op_type != "Concat":
            continue
        inputs = [name for name in node.input if name in shared and name not in graph.constants]
        if len(inputs) < 2:
            continue
        chains = [chain(name) for name in inputs]
        # the largest range on any chain: a fused Conv + Relu picks its frac from the Conv's range, wider than
        # the Relu's, so the Concat's own range would leave that input at a coarser frac than the others
        target = max(shared[name] for names in chains for name in names)
        for names in chains:
            for name in names:  # (widened up to the first tensor that another node reads too)
                if consumers.get(name) != 1 or name in graph.outputs:
                    break
                if shared[name] < target:
                    shared[name] = target
        joined = node.output[0] if node.output else ""
        if joined in shared and shared[joined] < target:  # its frac is its inputs' (for a Concat fed by this one)
            shared[joined] = target
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
