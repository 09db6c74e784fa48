"""Pass 2: constant folding. A node whose inputs are all known at compile time (initializers, Constant
nodes, Shape/Size of a tensor whose shape is fully static) is evaluated here with float math, by the onnx
reference evaluator, and becomes a constant. Identity and inference-time Dropout become aliases. An If on a
constant condition becomes the branch it takes; a Loop or Scan of known length, its iterations (unroll.py)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.compiler.load import Graph, attribute, cast_like_as_cast
from verifier.compiler.unroll import NextIteration, first_iteration, next_nodes, unrolled_scan
from verifier.errors import CompileError

NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
              # sequences are not tensors: an unrolled loop's sequence becomes a Concat (unroll.concat_sequences)
              "SequenceEmpty", "SequenceConstruct", "SequenceInsert"}
ALIASES = {"Identity", "Dropout"}


def fold_constants(graph: Graph) -> Graph:
    kept = []
    rename: dict[str, str] = {}
    used = {name for node in graph.nodes for name in node.input} | set(graph.outputs)
    pending = list(reversed(graph.nodes))
    while pending:
        node = pending.pop()
        if isinstance(node, NextIteration):  # a Loop's iteration is folded: the next one, or its outputs
            node.condition = rename.get(node.condition, node.condition)
            following = next_nodes(node, graph)
            pending.extend(reversed(following))
            used |= {name for n in following if not isinstance(n, NextIteration) for name in n.input}
            continue
        if node.op_type == "If" and node.input[0] in graph.constants:  # (a function body's shape test)
            branch = _chosen_branch(node, graph)
            pending.extend(reversed(branch))
            used |= {name for n in branch for name in n.input}
            continue
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        unrolled = (first_iteration(node, graph) if node.op_type == "Loop" else
                    unrolled_scan(node, graph) if node.op_type == "Scan" else None)
        if unrolled is not None:
            pending.extend(reversed(unrolled))
            used |= {name for n in unrolled if not isinstance(n, NextIteration) for name in n.input}
            continue
        mask_wanted = len(node.output) > 1 and bool(node.output[1]) and node.output[1] in used
        if (node.op_type in ALIASES and not mask_wanted and node.input[0] not in graph.constants
                and _dropout_is_inference(node, graph)):
            if node.output[0] in graph.outputs:
                kept.append(_identity(node))
            else:
                rename[node.output[0]] = node.input[0]
            continue
        value = _static_value(node, graph)
        if value is not None:
            for name, array in zip(node.output, value):
                graph.constants[name] = array
                graph.shapes[name] = tuple(array.shape)
            continue
        kept.append(node)
    graph.nodes = kept
    graph.outputs = [rename.get(o, o) for o in graph.outputs]
    return graph


def _chosen_branch(node, graph: Graph) -> list:
    """The nodes of the branch a constant If condition picks (ONNX names are unique across subgraphs, so
    they keep theirs), its initializers added to the constants, and an Identity from each branch output to
    the If's output."""
    condition = bool(np.asarray(graph.constants[node.input[0]]).reshape(-1)[0])
    branch = attribute(node, "then_branch" if condition else "else_branch", None)
    for init in branch.initializer:
        graph.constants[init.name] = numpy_helper.to_array(init)
    nodes = []
    for inner in branch.node:
        clone = onnx.NodeProto()
        clone.CopyFrom(inner)
        clone.name = clone.name or f"{inner.op_type}_{inner.output[0]}"
        nodes.append(clone)
    for source, target in zip(branch.output, node.output):
        nodes.append(helper.make_node("Identity", [source.name], [target], name=f"{node.name}/{target}"))
    for info in list(branch.value_info) + list(branch.output):
        if info.type.tensor_type.elem_type:
            graph.dtypes[info.name] = helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
    cast_like_as_cast(nodes, {**{n: v.dtype for n, v in graph.constants.items()}, **graph.dtypes}, graph.opset)
    return nodes


def _dropout_is_inference(node, graph: Graph) -> bool:
    if node.op_type != "Dropout" or len(node.input) < 3 or not node.input[2]:
        return True
    training = graph.constants.get(node.input[2])
    return training is not None and not bool(np.asarray(training).any())


def _identity(node):
    return helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name)


def _static_value(node, graph: Graph):
    if node.op_type in NEVER_FOLD or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                          for a in node.attribute):  # (a subgraph may read run-time tensors)
        return None
    if node.op_type == "Shape":
        shape = graph.shapes.get(node.input[0])
        if shape is None or any(d is None for d in shape):
            return None
        start = attribute(node, "start", 0)
        end = attribute(node, "end", None)
        return [np.array(shape[start:end], dtype=np.int64)]
    if node.op_type == "Size":
        shape = graph.shapes.get(node.input[0])
        if shape is None or any(d is None for d in shape):
            return None
        return [np.array(int(np.prod(shape)), dtype=np.int64)]
    if node.op_type == "Constant" or all(not n or n in graph.constants for n in node.input):
        return evaluate_node(node, [graph.constants.get(n) if n else None for n in node.input], graph.opset)
    return None


def evaluate_node(node, inputs, opset: int):
    """Run one node on numpy values with the onnx reference evaluator, or onnxruntime for an op version the
    evaluator lacks (compile time only)."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if value is not None else "" for i, value in enumerate(inputs)]
    clone = onnx.NodeProto()
    clone.CopyFrom(node)
    del clone.input[:]
    clone.input.extend(names)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                    for n, v in zip(names, inputs) if n]
    graph_outputs = [helper.make_empty_tensor_value_info(o) for o in clone.output if o]
    model = helper.make_model(helper.make_graph([clone], "fold", graph_inputs, graph_outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: v for n, v in zip(names, inputs) if n}
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:
        try:  # the reference evaluator lacks some op versions (DequantizeLinear before 19): onnxruntime's
            from verifier.compiler.ranges import run_onnxruntime

            results = list(run_onnxruntime(model, feeds).values())
        except Exception:
            raise CompileError(f"cannot fold constant node {node.name!r} ({node.op_type}): {exc}") from exc
    return [np.asarray(r) for r in results]


def refresh_shapes(graph: Graph) -> None:
    """Shape inference again on the folded graph, so ops see the shapes of folded Reshape targets."""
    model = to_model(graph, expose_all=False)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return
    from verifier.compiler.load import _shape_of

    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        shape = _shape_of(info)
        if shape is not None and (graph.shapes.get(info.name) is None or None in graph.shapes[info.name]):
            graph.shapes[info.name] = shape


def to_model(graph: Graph, expose_all: bool) -> onnx.ModelProto:
    """The working graph as an ONNX model again (for calibration and shape inference)."""
    used = {n for node in graph.nodes for n in node.input} | set(graph.outputs)
    initializers = [numpy_helper.from_array(np.asarray(v), name) for name, v in graph.constants.items() if name in used]
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                            None if shape is None else [d if d is not None else f"d{i}"
                                                                        for i, d in enumerate(shape)])
              for name, shape, dtype in graph.inputs]
    outputs = list(graph.outputs)
    if expose_all:
        outputs += [o for node in graph.nodes for o in node.output if o and o not in outputs]
    graph_outputs = [helper.make_empty_tensor_value_info(name) for name in outputs]
    return helper.make_model(helper.make_graph(graph.nodes, "vinfer", inputs, graph_outputs, initializers),
                             opset_imports=[helper.make_opsetid("", graph.opset)]
                             + [helper.make_opsetid(domain, version) for domain, version in graph.domains.items()],
                             ir_version=8)
