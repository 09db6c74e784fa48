"""Part of pass 2: a Loop whose length folding can tell is unrolled into its iterations, as folding picks an
If's branch: the interpreter runs no subgraphs, and a loop of known length is a straight sequence of its body.
torch exports nn.EmbeddingBag this way (one iteration per bag; the torchscript exporter with a trip count,
the dynamo exporter with a condition on a counter, collecting the rows in a sequence).

Iteration k is a copy of the body whose tensors - those of its nested If branches too - are renamed
`<name>@<loop>/iteration<k>`; its iteration number is the constant k, its condition input the constant
true, its loop-carried inputs the previous iteration's outputs (the Loop's initial values for k = 0). Folding
runs each copy before the next is made (fold.py pops a NextIteration after it), so an iteration's condition
output is known by then: true continues, false ends the loop, a run-time value refuses it. The Loop's
carried outputs are the last iteration's; each scan output is the iterations' values stacked on a new first
axis (Unsqueeze, Concat). A sequence the iterations build (SequenceEmpty, SequenceInsert, then
ConcatFromSequence) becomes one Concat of its tensors (concat_sequences).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.compiler.load import attribute, cast_like_as_cast
from verifier.errors import UnsupportedOpError

MAX_TRIPS = 4096
MAX_NODES = 1 << 15  # nodes of all the copies together (a program holds at most 2**16: verifier.cost)


@dataclass
class NextIteration:
    """Queued after an iteration's nodes: decides, once they are folded, whether another one follows."""

    loop: onnx.NodeProto
    number: int  # of the iteration to make next
    carried: list  # names of the loop-carried values going into it
    condition: str  # the name of the condition deciding it ("" for none: the Loop has no condition)
    scans: list = field(default_factory=list)  # per scan output, the names of its values so far


def first_iteration(loop, graph) -> list | None:
    """The nodes of a Loop's first iteration, then its NextIteration; None when the Loop's trip count
    or initial condition is not a constant (it stays a Loop, which prepare_graph refuses by name)."""
    trips = _constant(graph, loop.input[0]) if loop.input[0] else None
    condition = loop.input[1] if len(loop.input) > 1 else ""
    if (loop.input[0] and trips is None) or (condition and _constant(graph, condition) is None):
        return None
    if not loop.input[0] and not condition:
        return None  # an endless loop
    body = _body(loop)
    outputs = len(body.output) - 1 - (len(loop.input) - 2)
    return next_nodes(NextIteration(loop, 0, list(loop.input[2:]), condition, [[] for _ in range(outputs)]), graph)


def next_nodes(state: NextIteration, graph) -> list:
    """What follows an iteration: the next one and its NextIteration, or the Loop's outputs."""
    loop, body = state.loop, _body(state.loop)
    name = loop.name or loop.output[0]
    trips = _constant(graph, loop.input[0]) if loop.input[0] else None
    if state.condition and state.condition not in graph.constants:
        raise UnsupportedOpError("Loop", name, graph.opset, "its condition depends on run-time values (a loop "
                                 "whose length is known at compile time is unrolled)")
    going_on = bool(np.asarray(graph.constants[state.condition]).all()) if state.condition else True
    if not going_on or (trips is not None and state.number >= int(trips)):
        return _outputs(state, graph)
    if state.number >= MAX_TRIPS or (state.number + 1) * _size(body) > MAX_NODES:
        raise UnsupportedOpError("Loop", name, graph.opset, f"it runs more than {state.number} times, past the "
                                 f"{MAX_TRIPS} iterations or {MAX_NODES} nodes it may be unrolled into")
    nodes, results = _iteration(state, body, graph)
    carried = len(state.carried)
    for values, value in zip(state.scans, results[1 + carried:]):
        values.append(value)
    follow = NextIteration(loop, state.number + 1, results[1:1 + carried], results[0] if body.output[0].name else "",
                           state.scans)
    return nodes + [follow]


def concat_sequences(graph) -> None:
    """In place: every ConcatFromSequence of a sequence built by SequenceInsert (at the end) from a
    SequenceEmpty, or by SequenceConstruct, read by nothing else, becomes a Concat of its tensors."""
    producers = {node.output[0]: node for node in graph.nodes if node.output}
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    replaced, dropped = {}, set()
    for index, node in enumerate(graph.nodes):
        if node.op_type != "ConcatFromSequence":
            continue
        tensors, chain = _sequence_tensors(node.input[0], producers, readers)
        if not tensors:  # (not such a sequence, or an empty one: left to be refused by name)
            continue
        axis, new_axis = attribute(node, "axis", 0), attribute(node, "new_axis", 0)
        name = node.name or node.output[0]
        replaced[index] = (_stack(tensors, node.output[0], name, axis, graph) if new_axis else
                           [helper.make_node("Concat", tensors, [node.output[0]], name=name, axis=axis)])
        dropped |= chain
    if replaced:
        graph.nodes = [new for index, node in enumerate(graph.nodes) if id(node) not in dropped
                       for new in replaced.get(index, [node])]


def unrolled_scan(scan, graph) -> list | None:
    """The nodes of every iteration of a Scan (opset 9 and later) whose scanned length is static, then of
    its outputs; None otherwise (it stays a Scan, refused before calibration). Iteration k reads element k
    (from the end, for a reverse direction) of each scanned input along its axis (a Gather of a constant index)."""
    body = attribute(scan, "body", None)
    scanned = attribute(scan, "num_scan_inputs", 0)
    if graph.opset < 9 or body is None or not scanned:
        return None
    states, sources = list(scan.input[:len(scan.input) - scanned]), list(scan.input[len(scan.input) - scanned:])
    axes = list(attribute(scan, "scan_input_axes", [0] * scanned))
    directions = list(attribute(scan, "scan_input_directions", [0] * scanned))
    lengths = set()
    for source, axis in zip(sources, axes):
        shape = graph.constants[source].shape if source in graph.constants else graph.shapes.get(source)
        if shape is None or not -len(shape) <= axis < len(shape) or shape[axis] is None:
            return None
        lengths.add(int(shape[axis]))
    name = scan.name or scan.output[0]
    if len(lengths) != 1 or not 1 <= min(lengths) <= MAX_TRIPS or min(lengths) * _size(body) > MAX_NODES:
        return None
    length = lengths.pop()
    nodes, outputs = [], [[] for _ in body.output[len(states):]]
    for k in range(length):
        tag = f"@{name}/iteration{k}"
        slices = []
        for index, (source, axis, reverse) in enumerate(zip(sources, axes, directions)):
            position = f"{name}/iteration{k}/input{index}/position"
            graph.constants[position] = np.array(length - 1 - k if reverse else k, dtype=np.int64)
            slices.append(f"{name}/iteration{k}/input{index}")
            nodes.append(helper.make_node("Gather", [source, position], [slices[-1]], name=slices[-1], axis=axis))
        inputs = [i.name for i in body.input]
        copied, results = _copy(body, dict(zip(inputs, states + slices)), tag, graph)
        nodes += copied
        states = results[:len(states)]
        for values, value in zip(outputs, results[len(states):]):
            values.append(value)
    nodes += [helper.make_node("Identity", [source], [target], name=f"{name}/{target}")
              for source, target in zip(states, scan.output[:len(states)]) if target]
    output_axes = list(attribute(scan, "scan_output_axes", [0] * len(outputs)))
    output_directions = list(attribute(scan, "scan_output_directions", [0] * len(outputs)))
    for values, target, axis, reverse in zip(outputs, scan.output[len(states):], output_axes, output_directions):
        if target:
            nodes += _stack(values[::-1] if reverse else values, target, f"{name}/{target}", axis, graph)
    return nodes


def _iteration(state: NextIteration, body, graph) -> tuple[list, list]:
    """(the renamed copy of the body for iteration `state.number`, the names of its outputs)."""
    loop = state.loop.name or state.loop.output[0]
    number, on = f"{loop}/iteration{state.number}/number", f"{loop}/iteration{state.number}/on"
    graph.constants[number] = np.array(state.number, dtype=np.int64)
    graph.constants[on] = np.array(True)
    inputs = [i.name for i in body.input]
    return _copy(body, dict(zip(inputs, [number, on] + state.carried)), f"@{loop}/iteration{state.number}", graph)


def _copy(body, bound: dict, tag: str, graph) -> tuple[list, list]:
    """(a copy of the body whose own tensors are renamed with `tag` and whose inputs read `bound`'s names,
    the names of its outputs)."""
    names = {produced: produced + tag for produced in _produced(body)}
    names.update(bound)
    for initializer in body.initializer:
        graph.constants[initializer.name] = numpy_helper.to_array(initializer)
    for info in list(body.value_info) + list(body.output):
        if info.type.tensor_type.elem_type and info.name in names:
            graph.dtypes[names[info.name]] = helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
    nodes = [_renamed_node(node, names, tag) for node in body.node]
    cast_like_as_cast(nodes, {**{n: v.dtype for n, v in graph.constants.items()}, **graph.dtypes}, graph.opset)
    return nodes, [names.get(o.name, o.name) for o in body.output]


def _outputs(state: NextIteration, graph) -> list:
    """The Loop's outputs: its carried values as the last iteration left them, its scan outputs stacked."""
    loop, name = state.loop, state.loop.name or state.loop.output[0]
    carried = len(state.carried)
    nodes = [helper.make_node("Identity", [source], [target], name=f"{name}/{target}")
             for source, target in zip(state.carried, loop.output[:carried]) if target]
    for values, target in zip(state.scans, loop.output[carried:]):
        if not target:
            continue
        if not values:
            raise UnsupportedOpError("Loop", name, graph.opset, "a scan output of a loop that runs no iteration")
        nodes += _stack(values, target, f"{name}/{target}", 0, graph)
    return nodes


def _stack(values: list, target: str, prefix: str, axis: int, graph) -> list:
    """Nodes stacking `values` on a new axis `axis` into `target` (Unsqueeze each, one Concat)."""
    rows = [f"{prefix}/row{i}" for i in range(len(values))]
    nodes = [_unsqueeze(value, row, axis, graph) for value, row in zip(values, rows)]
    return nodes + [helper.make_node("Concat", rows, [target], name=prefix, axis=axis)]


def _renamed_node(node, names: dict, tag: str):
    clone = helper.make_node(node.op_type, [names.get(n, n) for n in node.input],
                             [names.get(n, n) for n in node.output], name=(node.name or node.op_type) + tag,
                             domain=node.domain)
    for item in node.attribute:
        if item.type == onnx.AttributeProto.GRAPH:
            clone.attribute.append(helper.make_attribute(item.name, _renamed_graph(item.g, names, tag)))
        elif item.type == onnx.AttributeProto.GRAPHS:
            clone.attribute.append(helper.make_attribute(item.name,
                                                         [_renamed_graph(g, names, tag) for g in item.graphs]))
        else:
            clone.attribute.append(item)
    return clone


def _renamed_graph(graph, names: dict, tag: str):
    """A nested subgraph (an If branch) with the iteration's names; its initializers keep theirs."""
    renamed = onnx.GraphProto()
    renamed.CopyFrom(graph)
    del renamed.node[:]
    renamed.node.extend(_renamed_node(node, names, tag) for node in graph.node)
    for info in list(renamed.input) + list(renamed.output) + list(renamed.value_info):
        info.name = names.get(info.name, info.name)
    return renamed


def _produced(graph) -> set:
    """Every name a (sub)graph defines: its inputs and node outputs, nested subgraphs' too."""
    names = {i.name for i in graph.input}
    for node in graph.node:
        names.update(n for n in node.output if n)
        for inner in _subgraphs(node):
            names |= _produced(inner)
    return names


def _size(graph) -> int:
    """The nodes of a (sub)graph, its nested subgraphs' included."""
    return sum(1 + sum(_size(inner) for inner in _subgraphs(node)) for node in graph.node)


def _subgraphs(node) -> list:
    return [g for a in node.attribute for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs)]


def _sequence_tensors(name: str, producers: dict, readers: dict):
    """(the tensors of the sequence `name` in order, the ids of the nodes that build it), or (None, None)."""
    tensors, chain = [], set()
    while True:
        node = producers.get(name)
        if node is None or readers.get(name, 0) != 1:
            return None, None
        chain.add(id(node))
        if node.op_type == "SequenceEmpty":
            return tensors[::-1], chain
        if node.op_type == "SequenceConstruct":
            return list(node.input) + tensors[::-1], chain
        if node.op_type != "SequenceInsert" or (len(node.input) > 2 and node.input[2]):
            return None, None
        tensors.append(node.input[1])
        name = node.input[0]


def _unsqueeze(value: str, output: str, axis: int, graph):
    if graph.opset >= 13:
        axes = f"{output}/axes"
        graph.constants[axes] = np.array([axis], dtype=np.int64)
        return helper.make_node("Unsqueeze", [value, axes], [output], name=output)
    return helper.make_node("Unsqueeze", [value], [output], name=output, axes=[axis])


def _body(loop):
    return attribute(loop, "body")


def _constant(graph, name: str):
    value = graph.constants.get(name)
    return None if value is None or np.asarray(value).size != 1 else np.asarray(value).reshape(-1)[0]
