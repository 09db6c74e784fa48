"""Each op against onnxruntime on random inputs. Both sides see the same (already quantized) input, so the
difference is the op's own error, stated per op in units of the output scale (LSB = 2**-fy):
data movement and max are exact (0 LSB); a single rounding is <= 0.5 LSB; ops with quantized constants
add the constants' own quantization error, bounded from the data and the constants' frac."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier.fixedpoint import dequantize, quantize
from verifier.ops._common import weight_frac
from verifier_helpers import ort_run

FLOAT_SLACK = 1e-3  # onnxruntime's own float32 rounding, in LSB


def model_of(op, inputs, attrs=None, initializers=None, opset=17, outputs=1):
    """A one-node model: `inputs` name -> shape of the run-time inputs; initializers name -> array."""
    initializers = initializers or {}
    names = list(inputs) + list(initializers)
    node = helper.make_node(op, names, [f"y{i}" for i in range(outputs)], **(attrs or {}))
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(outputs)],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers.items()])
    return with_output_types(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8))


def with_output_types(model):
    """Declare the outputs' types and shapes (the checker wants them), found by the onnx reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim], np.float32) for i in model.graph.input
             if i.name not in {t.name for t in model.graph.initializer}}
    results = ReferenceEvaluator(model).run(None, feeds)
    outputs = [helper.make_tensor_value_info(o.name, TensorProto.FLOAT, r.shape) for o, r in zip(model.graph.output, results)]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    return model


def run_both(model, feeds):
    """(fixed-point output as float, onnxruntime output on the same quantized input, output frac)."""
    program = compile_model(model, calibration=feeds)
    session = InferenceSession(program)
    quantized = {i.name: dequantize(quantize(feeds[i.name], i.frac), i.frac) for i in program.inputs}
    fixed = session.run(None, feeds)[0]
    reference = ort_run(model, quantized)[0]
    return fixed, reference, program.outputs[0].frac


def error_lsb(model, feeds):
    fixed, reference, frac = run_both(model, feeds)
    assert fixed.shape == reference.shape
    return float(np.max(np.abs(fixed.astype(np.float64) - reference))) * 2.0**frac


def rand(*shape, scale=2.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


EXACT = [
    ("Relu", {"x": rand(4, 8)}, {}, {}),
    ("MaxPool", {"x": rand(2, 3, 9, 9)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, {}),
    ("MaxPool", {"x": rand(2, 3, 10, 10)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "dilations": [1, 1]}, {}),
    ("MaxPool", {"x": rand(1, 2, 17)}, {"kernel_shape": [3], "auto_pad": "SAME_UPPER", "strides": [2]}, {}),
    ("GlobalMaxPool", {"x": rand(2, 3, 5, 5)}, {}, {}),
    ("Flatten", {"x": rand(2, 3, 4)}, {"axis": 2}, {}),
    ("Reshape", {"x": rand(2, 3, 4)}, {}, {"shape": np.array([0, -1], dtype=np.int64)}),
    ("Transpose", {"x": rand(2, 3, 4)}, {"perm": [2, 0, 1]}, {}),
    ("Squeeze", {"x": rand(2, 1, 4)}, {}, {"axes": np.array([1], dtype=np.int64)}),
    ("Unsqueeze", {"x": rand(2, 4)}, {}, {"axes": np.array([0, -1], dtype=np.int64)}),
    ("Slice", {"x": rand(6, 8)}, {}, {"starts": np.array([1, -2], dtype=np.int64), "ends": np.array([5, -8], dtype=np.int64),
                                      "axes": np.array([0, 1], dtype=np.int64), "steps": np.array([2, -2], dtype=np.int64)}),
    ("Identity", {"x": rand(3, 3)}, {}, {}),
    ("Clip", {"x": rand(4, 8)}, {}, {"lo": np.array(-0.5, dtype=np.float32), "hi": np.array(6.0, dtype=np.float32)}),
    ("Neg", {"x": rand(3, 4)}, {}, {}),
    ("Abs", {"x": rand(3, 4)}, {}, {}),
    ("Max", {"a": rand(3, 4), "b": rand(3, 4, seed=1)}, {}, {}),
    ("Min", {"a": rand(3, 4), "b": rand(4, seed=1)}, {}, {}),
    ("Expand", {"x": rand(3, 1)}, {}, {"shape": np.array([2, 3, 4], dtype=np.int64)}),
    ("Tile", {"x": rand(2, 3)}, {}, {"repeats": np.array([2, 2], dtype=np.int64)}),
    ("Resize", {"x": rand(1, 2, 3, 4)}, {"mode": "nearest"},
     {"roi": np.array([], np.float32), "scales": np.array([1, 1, 2, 1.5], np.float32)}),
    ("ReduceMax", {"x": rand(3, 4, 5)}, {"keepdims": 0}, {"axes": np.array([1], dtype=np.int64)}),
] + [
    ("Pad", {"x": rand(1, 2, 5, 5)}, {"mode": mode}, {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64)})
    for mode in ("constant", "reflect", "edge", "wrap")
]


@pytest.mark.parametrize("op, feeds, attrs, initializers", EXACT, ids=[f"{c[0]}-{i}" for i, c in enumerate(EXACT)])
def test_data_movement_and_max_ops_are_exact(op, feeds, attrs, initializers):
    opset = 19 if (op == "Pad" and attrs.get("mode") == "wrap") or op == "Resize" else (18 if op.startswith("Reduce") else 17)
    assert error_lsb(model_of(op, {k: v.shape for k, v in feeds.items()}, attrs, initializers, opset=opset), feeds) == 0.0


ROUNDED_ONCE = [
    ("AveragePool", {"x": rand(2, 3, 9, 9)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"x": rand(2, 3, 9, 9)}, {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0], "count_include_pad": 1}),
    ("AveragePool", {"x": rand(1, 2, 10, 10)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("GlobalAveragePool", {"x": rand(2, 3, 5, 7)}, {}),
    ("Add", {"a": rand(4, 8), "b": rand(1, 8, scale=0.1, seed=1)}, {}),
    ("Sub", {"a": rand(4, 8), "b": rand(4, 8, scale=5, seed=1)}, {}),
    ("Sum", {"a": rand(4, 8), "b": rand(4, 8, seed=1), "c": rand(8, seed=2)}, {}),
    ("Mul", {"a": rand(4, 8), "b": rand(4, 8, seed=1)}, {}),
    ("Concat", {"a": rand(2, 3), "b": rand(2, 5, scale=20, seed=1)}, {"axis": 1}),
    ("Mean", {"a": rand(4, 8), "b": rand(4, 8, seed=1), "c": rand(8, seed=2)}, {}),
    ("GlobalAveragePool", {"x": rand(1, 4, 3, 3)}, {}),
]


@pytest.mark.parametrize("op, feeds, attrs", ROUNDED_ONCE, ids=[f"{c[0]}-{i}" for i, c in enumerate(ROUNDED_ONCE)])
def test_ops_that_round_once_are_within_half_an_lsb(op, feeds, attrs):
    assert error_lsb(model_of(op, {k: v.shape for k, v in feeds.items()}, attrs), feeds) <= 0.5 + FLOAT_SLACK


def test_leaky_relu_is_within_half_an_lsb():
    feeds = {"x": rand(4, 16)}
    assert error_lsb(model_of("LeakyRelu", {"x": (4, 16)}, {"alpha": 0.2}), feeds) <= 0.5 + FLOAT_SLACK


def test_div_by_constant_is_within_half_an_lsb_plus_the_reciprocal_error():
    feeds = {"x": rand(4, 8)}
    divisor = np.array([3.0, -7.0, 0.3, 10.0, 1.0, 2.5, 1e3, 0.01], dtype=np.float32)
    # the reciprocal carries >= 30 significant bits: relative error < 2**-29 on outputs < 2**15 LSB
    assert error_lsb(model_of("Div", {"x": (4, 8)}, initializers={"d": divisor}), feeds) <= 0.5 + FLOAT_SLACK + 2**-14


def _weighted_bound(x, weight, fan_in_axes, frac_out):
    """0.5 LSB for the final rounding + |x|·|w - w_q| summed over the fan-in + the bias rounding."""
    fw = weight_frac(weight)
    worst_input_sum = float(np.max(np.sum(np.abs(x).reshape(x.shape[0], -1), axis=1)))
    return 0.5 + (worst_input_sum * 2.0 ** -(fw + 1) + 2.0 ** -fw) * 2.0**frac_out + FLOAT_SLACK


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_error_is_bounded_by_weight_quantization(trans_b):
    x = rand(5, 32)
    w = rand(32, 10, scale=0.3, seed=1)
    w = w.T.copy() if trans_b else w
    model = model_of("Gemm", {"x": x.shape}, {"transB": trans_b, "alpha": 0.5, "beta": 2.0},
                     {"w": w, "b": rand(10, scale=0.1, seed=2)})
    fixed, reference, frac = run_both(model, {"x": x})
    assert np.max(np.abs(fixed - reference)) * 2.0**frac <= _weighted_bound(x, 0.5 * w, None, frac)


def test_matmul_with_batch_broadcasting_is_bounded_by_weight_quantization():
    x = rand(2, 3, 4, 16)
    w = rand(16, 6, scale=0.5, seed=1)
    fixed, reference, frac = run_both(model_of("MatMul", {"x": x.shape}, initializers={"w": w}), {"x": x})
    assert np.max(np.abs(fixed - reference)) * 2.0**frac <= _weighted_bound(x.reshape(-1, 16), w, None, frac)


def test_matmul_of_two_tensors_rounds_once():
    feeds = {"a": rand(2, 4, 8), "b": rand(2, 8, 3, seed=1)}
    assert error_lsb(model_of("MatMul", {"a": (2, 4, 8), "b": (2, 8, 3)}), feeds) <= 0.5 + FLOAT_SLACK


CONVS = [
    ((2, 4, 9, 9), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 4, 10, 10), (8, 2, 3, 3), {"group": 2, "strides": [2, 2], "dilations": [2, 2]}),
    ((1, 6, 8, 8), (6, 1, 3, 3), {"group": 6, "auto_pad": "SAME_UPPER"}),
    ((1, 3, 7, 7), (4, 3, 2, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((2, 3, 20), (5, 3, 4), {"pads": [2, 1], "strides": [3]}),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONVS)
def test_conv_error_is_bounded_by_weight_quantization(x_shape, w_shape, attrs):
    x = rand(*x_shape)
    w = rand(*w_shape, scale=0.3, seed=1)
    model = model_of("Conv", {"x": x_shape}, attrs, {"w": w, "b": rand(w_shape[0], scale=0.1, seed=2)})
    fixed, reference, frac = run_both(model, {"x": x})
    fan_in = int(np.prod(w_shape[1:]))
    bound = 0.5 + (fan_in * float(np.max(np.abs(x))) * 2.0 ** -(weight_frac(w) + 1) + 2.0**-weight_frac(w)) * 2.0**frac
    assert np.max(np.abs(fixed - reference)) * 2.0**frac <= bound + FLOAT_SLACK


def test_unfolded_batchnorm_is_bounded_by_scale_quantization():
    x = rand(2, 3, 4, 4)
    params = {"s": np.array([1.5, 0.5, 2.0], np.float32), "bias": np.array([0.1, -0.2, 0.3], np.float32),
              "mean": np.array([0.0, 1.0, -1.0], np.float32), "var": np.array([1.0, 4.0, 0.25], np.float32)}
    fixed, reference, frac = run_both(model_of("BatchNormalization", {"x": x.shape}, {"epsilon": 1e-5}, params), {"x": x})
    scale = params["s"] / np.sqrt(params["var"] + 1e-5)
    bound = 0.5 + (float(np.max(np.abs(x))) * 2.0 ** -(weight_frac(scale) + 1) + 2.0**-weight_frac(scale)) * 2.0**frac
    assert np.max(np.abs(fixed - reference)) * 2.0**frac <= bound + FLOAT_SLACK


def test_prelu_is_within_half_an_lsb_plus_slope_quantization():
    x = rand(2, 3, 4)
    slope = np.array([[0.25], [0.1], [0.3]], dtype=np.float32)
    fixed, reference, frac = run_both(model_of("PRelu", {"x": x.shape}, initializers={"slope": slope}), {"x": x})
    bound = 0.5 + float(np.max(np.abs(x))) * 2.0 ** -(weight_frac(slope) + 1) * 2.0**frac
    assert np.max(np.abs(fixed - reference)) * 2.0**frac <= bound + FLOAT_SLACK


def test_silu_as_mul_of_x_and_its_sigmoid_rounds_once_at_the_mul():
    pytest.importorskip("verifier.ops.sigmoid")
    x = rand(4, 8)
    node_s = helper.make_node("Sigmoid", ["x"], ["s"])
    node_m = helper.make_node("Mul", ["x", "s"], ["y0"])
    graph = helper.make_graph([node_s, node_m], "silu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_empty_tensor_value_info("y0")])
    model = with_output_types(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    fixed, reference, frac = run_both(model, {"x": x})
    assert np.max(np.abs(fixed - reference)) < 0.01 * np.max(np.abs(reference))


def test_comparisons_where_and_topk_match_onnxruntime_exactly():
    a, b = rand(3, 5), rand(3, 5, seed=1)
    for op in ("Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual"):
        model = model_of(op, {"a": a.shape, "b": b.shape})
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.BOOL
        program = compile_model(model, calibration={"a": a, "b": b})
        quantized = {i.name: dequantize(quantize(v, i.frac), i.frac) for i, v in zip(program.inputs, (a, b))}
        got = InferenceSession(program).run(None, {"a": a, "b": b})[0]
        assert np.array_equal(got.astype(bool), ort_run(model, quantized)[0]), op
    x = rand(4, 6)
    values, indices = InferenceSession(compile_model(
        model_of("TopK", {"x": x.shape}, {"axis": 1}, {"k": np.array([3], np.int64)}, outputs=2),
        calibration={"x": x})).run(None, {"x": x})
    assert np.array_equal(indices, np.argsort(-x, axis=1, kind="stable")[:, :3])
