"""Quantized ONNX models as onnxruntime's own quantization tools write them: QDQ (QuantizeLinear /
DequantizeLinear around float ops, static calibration) and dynamic (DynamicQuantizeLinear, MatMulInteger,
ConvInteger), for the digits MLP and CNN; the operator form (QLinearConv, QLinearMatMul) of a conv net with a
MatMul head; and each quantization op against onnxruntime. The quantization
steps are integer-exact replicas of onnxruntime's float steps (a float32 division's rounding emulated on
integers), so quantized values match exactly."""

import numpy as np
import onnx
import pytest
from onnx import helper

from test_ops_coverage import assert_exact, graph_model, rand
from test_ops_nonlinear import assert_within
from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError
from verifier_helpers import EXAMPLES, ort_run


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, digits):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, name, data):
            self.batches = iter([{name: data[i:i + 16]} for i in range(0, 128, 16)])

        def get_next(self):
            return next(self.batches, None)

    folder = tmp_path_factory.mktemp("quantized")
    models = {}
    for kind, path in (("cnn", EXAMPLES / "digits_cnn.onnx"), ("mlp", digits["mlp_path"])):
        name = onnx.load(str(path)).graph.input[0].name
        data = digits["images"]  # (N, 1, 8, 8): both models take the images
        for form in ("qdq", "dynamic", "qoperator"):
            out = folder / f"{kind}_{form}.onnx"
            if form == "dynamic":
                quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
            else:
                quantize_static(str(path), str(out), Reader(name, data),
                                quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
                                per_channel=kind == "cnn", activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            models[kind, form] = (out, name, data)
    return models


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    import sys

    from verifier_helpers import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    import make_example_model as example

    train, _, labels, _ = example.load_digits_split()
    folder = tmp_path_factory.mktemp("digits")
    return {"images": train.astype(np.float32), "mlp_path": example.export(example.train_mlp(train, labels),
                                                                          str(folder / "mlp.onnx"))}


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
@pytest.mark.parametrize("form", ["qdq", "dynamic"])
def test_quantized_digits_models_agree_with_onnxruntime(quantized, kind, form):
    path, name, data = quantized[kind, form]
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ("QuantizeLinear" in ops) if form == "qdq" else ("DynamicQuantizeLinear" in ops)
    session = InferenceSession(compile_model(str(path), calibration={name: data[:256]}))
    test = data[-200:]
    fixed, reference = session.run(None, {name: test})[0], ort_run(str(path), {name: test})[0]
    assert np.mean(fixed.argmax(1) == reference.argmax(1)) >= 0.99
    assert np.max(np.abs(fixed - reference)) <= 0.02 * np.max(np.abs(reference))


def test_operator_form_with_contrib_ops_is_refused_by_name(quantized):
    path, name, data = quantized["mlp", "qoperator"]
    with pytest.raises(UnsupportedOpError, match="com.microsoft"):
        compile_model(str(path), calibration={name: data[:64]})


@pytest.mark.parametrize("zero_point,axis", [(np.uint8(128), None), (np.int8(-3), None),
                                             (np.array([0, 5, -7], np.int8), 1), (np.int16(100), None)])
def test_quantize_linear_is_exact(zero_point, axis):
    feeds = {"x": rand(2, 3, 7, scale=3.0)}
    feeds["x"][0, 0, :3] = [0.25, -0.25, 0.75]  # (ties of x / scale for scale 0.5)
    scale = np.array([0.5, 0.0371, 0.013], np.float32) if axis is not None else np.array(0.0233, np.float32)
    if np.asarray(zero_point).dtype == np.int16:
        scale = np.array(0.5, np.float32)  # (16-bit outputs need as many bits as the input: a coarse scale)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **({"axis": axis} if axis is not None else {}))
    assert_exact(graph_model([node], feeds, {"s": scale, "z": np.asarray(zero_point)}, opset=21), feeds)


@pytest.mark.parametrize("dtype,zero_point", [(np.uint8, 128), (np.int8, -3), (np.int32, 0)])
def test_dequantize_linear_rounds_once(dtype, zero_point):
    info = np.iinfo(np.int8 if dtype == np.int32 else dtype)
    feeds = {"x": np.random.default_rng(0).integers(info.min, info.max + 1, (3, 8)).astype(dtype)}
    model = graph_model([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])], feeds,
                        {"s": np.array(0.0371, np.float32), "z": np.array(zero_point, dtype)}, opset=21)
    program = compile_model(model, calibration=feeds)
    frac = program.outputs[0].frac
    ours = InferenceSession(program).run(None, feeds)[0].astype(np.float64) * 2.0**frac
    assert_within(ours, ort_run(model, feeds)[0].astype(np.float64) * 2.0**frac, 0.5)


def test_dynamic_quantize_linear_is_exact_including_float_ties():
    feeds = {"x": np.concatenate([rand(40, scale=2.0), np.array([0.0, 2.0, -3.0, -2.5, 1.34, 0.5], np.float32)])}
    outputs = ("y", "scale", "zero_point")
    model = graph_model([helper.make_node("DynamicQuantizeLinear", ["x"], list(outputs))], feeds, outputs=outputs,
                        opset=11)
    program = compile_model(model, calibration=feeds)
    frac = program.inputs[0].frac
    on_grid = {"x": (np.round(feeds["x"] * 2.0**frac) * 2.0**-frac).astype(np.float32)}
    ours, reference = InferenceSession(program).run(None, on_grid), ort_run(model, on_grid)
    assert np.array_equal(ours[0], reference[0]) and ours[2] == reference[2]
    assert abs(float(ours[1]) - float(reference[1])) <= 2.0 ** -program.outputs[1].frac


def assert_paths_agree(model, feeds):
    program = compile_model(model, calibration=feeds)
    fast = InferenceSession(program, path="fast").run_fixed(feeds).commitment
    assert fast == InferenceSession(program, path="reference").run_fixed(feeds).commitment


def test_matmul_integer_and_conv_integer_are_exact_on_both_paths():
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 256, (4, 9)).astype(np.uint8)}
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
    model = graph_model([node], feeds, {"b": rng.integers(-128, 128, (9, 5)).astype(np.int8),
                                        "za": np.array(131, np.uint8), "zb": np.array(-2, np.int8)}, opset=10)
    assert_exact(model, feeds)
    assert_paths_agree(model, feeds)
    feeds = {"x": rng.integers(0, 256, (2, 3, 6, 6)).astype(np.uint8)}
    node = helper.make_node("ConvInteger", ["x", "w", "zx"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1])
    model = graph_model([node], feeds, {"w": rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8),
                                        "zx": np.array(17, np.uint8)}, opset=10)
    assert_exact(model, feeds)
    assert_paths_agree(model, feeds)


class ConvMatMul(__import__("torch").nn.Module):
    """Convolutions and a bias-free linear head on a 3-D tensor (a MatMul: the operator form's QLinearMatMul;
    a Gemm would become onnxruntime's contrib QGemm)."""

    def __init__(self):
        import torch

        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(8 * 16, 10, bias=False)

    def forward(self, x):
        import torch

        return self.head(torch.relu(self.conv2(torch.relu(self.conv1(x)))).reshape(x.shape[0], 1, -1))


@pytest.mark.parametrize("per_channel", [False, True])
def test_operator_form_qlinear_conv_and_matmul_match_onnxruntime(per_channel, tmp_path):
    import io

    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(ConvMatMul().eval(), (torch.zeros(4, 1, 8, 8),), buffer, dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    (tmp_path / "net.onnx").write_bytes(buffer.getvalue())
    data = np.random.default_rng(0).uniform(0, 1, (256, 1, 8, 8)).astype(np.float32)

    class Reader(CalibrationDataReader):
        batches = iter([{"x": data[i:i + 16]} for i in range(0, 128, 16)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tmp_path / "net.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QOperator,
                    per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    assert {"QLinearConv", "QLinearMatMul"} <= {node.op_type for node in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    program = compile_model(str(tmp_path / "q.onnx"), calibration={"x": data[:64]})
    step = 2.0 ** -program.inputs[0].frac  # (inputs on the program's grid: both sides quantize the same x)
    test = {"x": (np.round(data[-32:] / step) * step).astype(np.float32)}
    fixed, reference = InferenceSession(program).run(None, test)[0], ort_run(tmp_path / "q.onnx", test)[0]
    fast = InferenceSession(program, path="fast").run_fixed(test).commitment
    assert fast == InferenceSession(program, path="reference").run_fixed(test).commitment
    # the integers agree; the last DequantizeLinear rounds the float output once, to the output's frac
    assert np.max(np.abs(fixed - reference)) <= 2.0 ** -program.outputs[0].frac
