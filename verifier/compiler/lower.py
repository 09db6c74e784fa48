"""Pass 5: lowering. Every node goes through its op's `compile` (verifier/ops), in graph order; the
result is the integer Program whose bytes are then frozen."""

from __future__ import annotations

import numpy as np
from onnx import helper

from verifier.compiler.load import Graph
from verifier.compiler.ranges import infinite_tensors
from verifier.compiler.share_scales import narrow_outputs
from verifier.errors import CompileError, UnsupportedOpError
from verifier.fixedpoint import ACT_BITS, frac_for_range, quantize
from verifier.ops import CompileContext, Operand, lookup
from verifier.ops._common import weight_frac
from verifier.ops._infinity import finite_part, is_infinite
from verifier.program import Program, ProgramNode, TensorInfo


HINTS = {"ZipMap": "sequences of maps are not tensors; convert with skl2onnx options={'zipmap': False}",
         "If": "control flow: its condition is only known at run time (an If on a compile-time value is folded)",
         "Loop": "control flow: its trip count is only known at run time, or it runs more than 4096 times (a Loop "
                 "of constant length is unrolled)",
         "Scan": "control flow: its scanned length is only known at run time, or past 4096 (a Scan of static length "
                 "is unrolled)"}


def unsupported_nodes(graph: Graph) -> list[tuple[str, str]]:
    """(op_type, node name) of every node no op file lowers: what `vinfer inspect` lists."""
    return [(node.op_type, node.name) for node in graph.nodes if lookup(node.op_type) is None]


def lower(graph: Graph, ranges: dict, input_ranges: dict, calibrated: bool, matmul_bits: int = 16) -> Program:
    missing = unsupported_nodes(graph)
    if missing:
        op_type, name = missing[0]
        others = f" (and {len(missing) - 1} more unsupported nodes)" if len(missing) > 1 else ""
        raise UnsupportedOpError(op_type, name, graph.opset, HINTS.get(op_type, "no integer lowering for this op") + others)
    fracs: dict[str, int | None] = {}
    infinite = infinite_tensors(ranges)
    inputs = []
    for name, shape, dtype in graph.inputs:
        frac = frac_for_range(input_ranges[name]) if np.dtype(dtype).kind == "f" else None
        fracs[name] = frac
        inputs.append(TensorInfo(name, tuple(shape or ()), np.dtype(dtype).name, frac, graph.feature_shifts.get(name)))
    known_ranges = {**ranges, **input_ranges}
    narrow = narrow_outputs(graph, matmul_bits)
    constants: dict[str, np.ndarray] = {}
    nodes = []
    for node in graph.nodes:
        operands = [_operand(name, graph, fracs, infinite, known_ranges) if name else None for name in node.input]
        ctx = CompileContext(op_type=node.op_type, node_name=node.name, opset=graph.opset, inputs=operands,
                             attrs={a.name: _attr_value(a) for a in node.attribute},
                             output_names=list(node.output),
                             output_shapes=[graph.shapes.get(o) for o in node.output],
                             ranges=[ranges.get(o) for o in node.output], matmul_bits=matmul_bits,
                             narrow_output=bool(node.output) and node.output[0] in narrow)
        try:
            lowering = lookup(node.op_type).compile(ctx)
        except (UnsupportedOpError, CompileError):
            raise
        except Exception as exc:
            raise CompileError(f"cannot lower node {node.name!r} ({node.op_type}): {exc}") from exc
        runtime_inputs = []
        for index, operand in enumerate(operands):
            if operand is None or index in lowering.absorbed:
                runtime_inputs.append("")
                continue
            if operand.is_const and operand.name not in constants:
                constants[operand.name] = _materialize(operand)
                fracs[operand.name] = operand.frac
            runtime_inputs.append(operand.name)
        if len(lowering.out_fracs) != len(node.output):
            raise CompileError(f"op {node.op_type} returned {len(lowering.out_fracs)} output scales")
        for name, frac in zip(node.output, lowering.out_fracs):
            if name:
                fracs[name] = frac
        nodes.append(ProgramNode(node.op_type, node.name, runtime_inputs, list(node.output), lowering.attrs,
                                 {k: np.asarray(v, dtype=np.int64) for k, v in lowering.consts.items()},
                                 list(lowering.out_fracs)))
    outputs = []
    for name in graph.outputs:
        if name in graph.constants and name not in fracs:
            operand = _operand(name, graph, fracs)
            constants[name] = _materialize(operand)
            fracs[name] = operand.frac
        if name not in fracs:
            raise CompileError(f"graph output {name!r} is not computed by any node")
        dtype = np.dtype(graph.output_dtypes.get(name, np.float32)).name
        outputs.append(TensorInfo(name, tuple(graph.shapes.get(name) or ()), dtype, fracs[name]))
    used = {n for node in nodes for n in node.inputs} | {o.name for o in outputs}
    meta = {"opset": graph.opset, "producer": graph.producer, "calibrated": int(calibrated)}
    if matmul_bits != 16:
        meta["matmul_bits"] = matmul_bits
    return Program(inputs=inputs, outputs=outputs, nodes=nodes,
                   constants={k: v for k, v in constants.items() if k in used},
                   fracs={k: v for k, v in fracs.items() if k in used}, meta=meta)


def _operand(name: str, graph: Graph, fracs: dict, infinite: frozenset = frozenset(),
             known_ranges: dict | None = None) -> Operand:
    shape = graph.shapes.get(name)
    if name in graph.constants:
        value = np.asarray(graph.constants[name])
        if value.dtype.kind == "f" and np.isnan(value).any():
            raise CompileError(f"constant {name!r} holds NaN: fixed point has no NaN")
        if value.dtype.kind != "f":
            return Operand(name, tuple(value.shape), None, value)
        frac = weight_frac(finite_part(value), ACT_BITS)  # infinite entries saturate
        return Operand(name, tuple(value.shape), frac, value, may_be_infinite=bool(is_infinite(value).any()))
    if name not in fracs:
        raise CompileError(f"tensor {name!r} is used before any node computes it")
    value_range = (known_ranges or {}).get(name)
    return Operand(name, tuple(shape) if shape is not None else None, fracs[name],
                   may_be_infinite=name in infinite, range=None if value_range is None else float(value_range))


def _materialize(operand: Operand) -> np.ndarray:
    value = np.asarray(operand.value)
    if value.dtype.kind == "f":
        return quantize(value, operand.frac, ACT_BITS)
    return value.astype(np.int64)


def _attr_value(attribute):
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    if hasattr(value, "dims") and hasattr(value, "data_type"):
        from onnx import numpy_helper

        return numpy_helper.to_array(value)
    return value
