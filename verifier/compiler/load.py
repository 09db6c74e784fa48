"""Pass 1: read the ONNX model (external data too), check it, infer shapes, and put it in the compiler's
working form: a list of nodes, the constant values, and the known shape of every tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from verifier.compiler.functions import expand_function_ops
from verifier.compiler.ml import rewrite_ml_ops
from verifier.errors import ModelLoadError, UnsupportedOpError

MIN_OPSET = 6
MAX_OPSET = max(onnx.defs.onnx_opset_version(), 23)  # lowering is tested on opsets 9 and 13-21


@dataclass
class Graph:
    """The model as the passes see it: nodes in topological order, constants as numpy values."""

    nodes: list  # onnx.NodeProto
    constants: dict  # name -> np.ndarray
    inputs: list  # (name, shape, numpy dtype)
    outputs: list  # names
    output_dtypes: dict
    shapes: dict  # name -> tuple (None for a symbolic dim) or None when unknown
    opset: int
    producer: str = ""
    dtypes: dict = field(default_factory=dict)  # name -> numpy dtype, where shape inference or a value says
    domains: dict = field(default_factory=dict)  # other opset imports (ai.onnx.ml) -> version
    feature_shifts: dict = field(default_factory=dict)  # input name -> per-feature shifts (feature_scales.py)


def attribute(node, name: str, default=None):
    """The value of a node's attribute `name` (onnx.helper's form), or `default` when the node has none."""
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def load_model(model_or_path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
        return model
    if isinstance(model_or_path, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model_or_path))
        except Exception as exc:  # protobuf raises its own DecodeError
            raise ModelLoadError(f"malformed ONNX model: {exc}") from exc
    path = Path(model_or_path)
    if not path.is_file():
        raise ModelLoadError(f"no such model file: {path}")
    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load ONNX model {path}: {exc}") from exc


def to_graph(model: onnx.ModelProto) -> Graph:
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"invalid ONNX model: {str(exc).splitlines()[0]}") from exc
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), None)
    if opset is None and all(node.domain == "ai.onnx.ml" for node in model.graph.node):
        opset = MAX_OPSET  # an ai.onnx.ml-only graph: no default-domain op depends on it
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelLoadError(f"default-domain opset {opset} is outside the supported {MIN_OPSET}..{MAX_OPSET}")
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            raise UnsupportedOpError(f"{node.domain}.{node.op_type}", node.name or node.output[0], opset,
                                     "custom domains are not supported")
        if node.op_type not in ("If", "Loop", "Scan") and any(a.type in (onnx.AttributeProto.GRAPH,
                                                                 onnx.AttributeProto.GRAPHS) for a in node.attribute):
            # (an If on a constant is folded, a Loop or Scan of known length unrolled: fold.py)
            raise UnsupportedOpError(node.op_type, node.name or node.output[0], opset, "control flow subgraphs")
    rewrite_ml_ops(model, opset)
    model = _inferred(model)
    from verifier.ops import OPS

    expanded = expand_function_ops(model, opset, set(OPS) | {"CastLike"})
    if expanded is not model:
        model = _inferred(expanded)
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:  # give every node a name so errors and traces can point at it
        if not node.name:
            node.name = f"{node.op_type}_{node.output[0]}"
    shapes: dict = {}
    dtypes: dict = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        shapes[info.name] = _shape_of(info)
        if info.type.tensor_type.elem_type:
            dtypes[info.name] = onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
    for name, value in constants.items():
        shapes[name] = tuple(value.shape)
        dtypes[name] = value.dtype
    cast_like_as_cast(graph.node, dtypes, opset)
    inputs = [(i.name, shapes[i.name], dtypes.get(i.name, np.dtype("float32")))
              for i in graph.input if i.name not in constants]
    return Graph(nodes=list(graph.node), constants=constants, inputs=inputs, outputs=[o.name for o in graph.output],
                 output_dtypes={o.name: dtypes.get(o.name, np.dtype("float32")) for o in graph.output},
                 shapes=shapes, opset=opset, producer=model.producer_name, dtypes=dtypes,
                 domains={o.domain: o.version for o in model.opset_import if o.domain not in ("", "ai.onnx")})


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return model  # shapes are refined again after folding; a model ORT can run still lowers


def cast_like_as_cast(nodes, dtypes: dict, opset: int) -> None:
    """CastLike(x, like) becomes Cast(x, to=like's type) (in place): the type is known before folding, from
    shape inference or the initializer, and Cast's integer semantics then apply unchanged."""
    for node in nodes:
        if node.op_type != "CastLike":
            continue
        target = dtypes.get(node.input[1])
        if target is None:
            raise UnsupportedOpError("CastLike", node.name, opset, "the type of its target_type input is unknown")
        node.op_type = "Cast"
        del node.input[1:]
        node.attribute.append(onnx.helper.make_attribute("to", onnx.helper.np_dtype_to_tensor_dtype(np.dtype(target))))


def _shape_of(info: onnx.ValueInfoProto):
    tensor_type = info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
