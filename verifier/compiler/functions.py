"""Part of pass 1: an op the interpreter has no lowering for, which ONNX defines as a function of other ops
(RMSNormalization, Attention, RotaryEmbedding, GroupNormalization, MeanVarianceNormalization, Swish, ...),
is replaced by that function's body for the model's opset, inlined by onnx.inliner - the same expansion
ONNX's own `*_expanded` conformance cases use. Each inlined op is then lowered as usual, with its own
integer semantics; an op of the body that has no lowering is refused by name as any other."""

from __future__ import annotations

import onnx
import onnx.inliner
from onnx import helper

EXPANDED_DOMAIN = "vinfer.expanded"  # private names for the bodies while they are inlined
LOOPS = {"Scan", "Loop"}  # a body with a loop is not expanded: the interpreter runs no loops of subgraphs


def expand_function_ops(model: onnx.ModelProto, opset: int, implemented) -> onnx.ModelProto:
    """The model with every default-domain node whose op is not in `implemented` and has an ONNX function
    (plain or context dependent: built from the node's attributes and input types) replaced by the body.
    Nodes without a function are left for the lowering to refuse. `model` needs inferred types."""
    types = {info.name: info.type for info in list(model.graph.value_info) + list(model.graph.input)
             + list(model.graph.output)}
    for init in model.graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    expanded = 0
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in implemented:
            continue
        function = _function_of(node, opset, types)
        if function is None or any(inner.op_type in LOOPS for inner in function.node):
            continue  # (left for the lowering to refuse by its own name)
        function.name, function.domain = f"{node.op_type}.{expanded}", EXPANDED_DOMAIN
        node.op_type, node.domain = function.name, EXPANDED_DOMAIN
        model.functions.append(function)
        expanded += 1
    if not expanded:
        return model
    model.opset_import.append(helper.make_opsetid(EXPANDED_DOMAIN, 1))
    inlined = onnx.inliner.inline_local_functions(model, convert_version=True)
    del inlined.opset_import[:]
    inlined.opset_import.extend(op for op in model.opset_import if op.domain != EXPANDED_DOMAIN)
    return inlined


def _function_of(node: onnx.NodeProto, opset: int, types: dict) -> onnx.FunctionProto | None:
    """The op's function body for `opset` (the latest defined at or below it), or None."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    function = onnx.FunctionProto()
    plain = [v for v in schema.function_opset_versions if v <= opset]
    dependent = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    if plain:
        function.ParseFromString(schema.get_function_with_opset_version(max(plain)))
    elif dependent and all(not name or name in types for name in node.input):
        input_types = [types[name].SerializeToString() if name else onnx.TypeProto().SerializeToString()
                       for name in node.input]
        try:
            function.ParseFromString(schema.get_context_dependent_function_with_opset_version(
                max(dependent), node.SerializeToString(), input_types))
        except Exception:  # the schema refuses this node (a type it has no body for): left for the lowering
            return None
    else:
        return None
    for name, attribute in schema.attributes.items():  # the body reads the defaults from the node
        if attribute.default_value.name and name not in {a.name for a in node.attribute}:
            node.attribute.append(attribute.default_value)
    return function
