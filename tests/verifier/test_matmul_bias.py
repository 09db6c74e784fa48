"""compiler/fuse.py fuse_matmul_bias: the constant bias Add (or Sub) after a MatMul of run-time activations by a
constant weight - what torch exports for a Linear on a 3-D input - becomes the MatMul's bias at its accumulator
scale. Fused programs agree with onnxruntime as the unfused ones do, run the same bits on the fast and
reference paths, and only the pattern is fused (no other consumer, a bias of one value per column, x + k or
k + x or x - k, never k - x)."""

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run

K, N = 12, 7


def assert_agrees_and_paths_match(model, x, tolerance):
    program = compile_model(model, calibration={"x": x})
    fast, reference = InferenceSession(program), InferenceSession(program, path="reference")
    assert fast.run_trace({"x": x}) == reference.run_trace({"x": x})
    expected = ort_run(model, {"x": x})
    for ours, theirs in zip(fast.run(None, {"x": x}), expected):
        assert np.max(np.abs(ours - theirs)) <= tolerance * max(float(np.max(np.abs(theirs))), 1.0)
    return program


def test_torch_linear_layers_on_3d_inputs_carry_their_bias():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(layers, (torch.randn(2, 5, 16),), buffer, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    assert [n.op_type for n in model.graph.node].count("Add") == 2
    x = np.random.default_rng(1).standard_normal((64, 5, 16)).astype(np.float32)
    program = assert_agrees_and_paths_match(model, x, 2e-3)
    assert [n.op for n in program.nodes] == ["MatMul", "MatMul"]
    assert all("bias" in n.consts for n in program.nodes) and program.nodes[0].attrs.get("relu") == 1


def matmul_then(op, order, bias_shape=(N,), extra_output=False, bias_scale=1.0):
    """x (B, 3, K) @ W (K, N), then op(mm, bias) or op(bias, mm) by `order`."""
    rng = np.random.default_rng(len(bias_shape) + (order == "bias first"))
    weight = numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "w")
    bias = numpy_helper.from_array((rng.standard_normal(bias_shape) * bias_scale).astype(np.float32), "bias")
    operands = ["mm", "bias"] if order == "bias last" else ["bias", "mm"]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node(op, operands, ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3, N])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("mm", TensorProto.FLOAT, ["B", 3, N]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, K])],
                              outputs, [weight, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op,order,fused", [("Add", "bias last", True), ("Add", "bias first", True),
                                            ("Sub", "bias last", True), ("Sub", "bias first", False)])
def test_x_plus_k_k_plus_x_and_x_minus_k_fold_but_k_minus_x_does_not(op, order, fused):
    x = np.random.default_rng(2).standard_normal((32, 3, K)).astype(np.float32)
    program = assert_agrees_and_paths_match(matmul_then(op, order), x, 2e-3)
    assert ([n.op for n in program.nodes] == ["MatMul"]) == fused
    if fused and op == "Sub":  # x - k: the bias is -k
        assert np.all(np.sign(program.nodes[0].consts["bias"]) == -np.sign(numpy_helper.to_array(
            matmul_then(op, order).graph.initializer[1])))


@pytest.mark.parametrize("case", ["bias of shape (1, N)", "MatMul output also a graph output", "bias past 2**61"])
def test_what_is_not_the_pattern_stays_two_nodes(case):
    model = {"bias of shape (1, N)": lambda: matmul_then("Add", "bias last", bias_shape=(1, N)),
             "MatMul output also a graph output": lambda: matmul_then("Add", "bias last", extra_output=True),
             "bias past 2**61": lambda: matmul_then("Add", "bias last", bias_scale=1e14)}[case]()
    x = np.random.default_rng(3).standard_normal((32, 3, K)).astype(np.float32)
    program = compile_model(model, calibration={"x": x})
    assert [n.op for n in program.nodes] == ["MatMul", "Add"]
    fast, reference = InferenceSession(program), InferenceSession(program, path="reference")
    assert fast.run_trace({"x": x}) == reference.run_trace({"x": x})
