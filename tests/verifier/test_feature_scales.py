"""Per-feature input scales (compiler/feature_scales.py): raw tabular features of very different magnitudes keep
their precision through the ops that read them, the program records the shifts (format 3), feeds apply them, and
an input the pass cannot serve keeps its one scale."""

import io
import json
import struct
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from verifier import InferenceSession, compile_model
from verifier.errors import OutOfRangeError, ProgramFormatError
from verifier.program import Program
from verifier_helpers import ort_run

warnings.filterwarnings("ignore", module="sklearn")


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    return features.astype(np.float32), labels


class NormalizedMLP(nn.Module):
    """The usual torch tabular model: the training set's mean and std as buffers, the MLP on standardized
    features (exported as Sub, Div, Gemm)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.net = nn.Sequential(nn.Linear(mean.size, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def trained_mlp(features, labels):
    torch.manual_seed(0)
    model = NormalizedMLP(features.mean(0), features.std(0))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(features)), torch.from_numpy(labels)).backward()
        optimizer.step()
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.from_numpy(features[:2]),), buffer, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def sklearn_models(features, labels):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    for model in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                  DecisionTreeClassifier(max_depth=6, random_state=0)):
        model.fit(features, labels)
        yield to_onnx(model, features[:1], options={id(model): {"zipmap": False}},
                      target_opset={"": 17, "ai.onnx.ml": 3})


def test_raw_features_keep_their_precision(cancer):
    """On the raw test rows (not on any grid), labels agree with onnxruntime's: a row may only differ where a
    feature lies within half a step of a tree threshold or the logit within a step of 0. With one scale for all
    thirty features (areas up to 4254, fractal dimensions below 0.21) the small features kept two bits: 55.6% of
    the tree's, 92.4% of the pipeline's and 86.4% of the torch model's labels agreed; now all of them do."""
    features, labels = cancer
    train = 400
    models = [*sklearn_models(features[:train], labels[:train]), trained_mlp(features[:train], labels[:train])]
    for model in models:
        name = model.graph.input[0].name
        program = compile_model(model, calibration={name: features[:train]})
        shifts = program.inputs[0].feature_shifts
        assert shifts is not None and max(shifts) >= 8 and min(shifts) == 0
        ours, reference = InferenceSession(program).run(None, {name: features[train:]}), ort_run(model, {name: features[train:]})
        predicted = [out if out.ndim == 1 else np.argmax(out, axis=1) for out in (ours[0], reference[0])]
        assert np.mean(predicted[0] == predicted[1]) >= 0.99


def test_feature_shifts_apply_exactly_where_the_pass_undoes_them():
    """y = x @ W + b over features of magnitudes 1e4 and 1e-3: the small feature's contribution survives (with one
    scale it rounded to 0), and the result is the float model's within the output's rounding."""
    rng = np.random.default_rng(0)
    scales = np.array([1e4, 3.0, 1e-3, 0.5], dtype=np.float32)
    weights = np.array([[1e-4], [0.2], [500.0], [1.0]], dtype=np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(weights, "w")]), opset_imports=[helper.make_opsetid("", 17)])
    x = (rng.uniform(0.2, 1, (64, 4)) * scales).astype(np.float32)
    program = compile_model(model, calibration={"x": x})
    largest = np.abs(x).max(axis=0)
    # docs/fixed-point.md section 1: within 2**3 of the largest feature's range
    assert program.inputs[0].feature_shifts == tuple(np.floor(np.log2(largest.max() / largest)).astype(int)
                                                     .clip(3) - 3)
    fixed, reference = InferenceSession(program).run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
    step = 2.0 ** -program.outputs[0].frac
    # input rounding (each feature within 2**-(frac + shift) / 2) times its weight, the weights' 16-bit
    # rounding, then the output's rounding
    assert np.max(np.abs(fixed - reference)) <= 4 * step


def test_a_program_with_feature_shifts_is_format_3_and_round_trips(cancer, tmp_path):
    features, labels = cancer
    model = next(sklearn_models(features[:400], labels[:400]))
    program = compile_model(model, calibration={"X": features[:400]})
    data = program.to_bytes()
    assert data[3] == 3
    loaded = Program.from_bytes(data)
    assert loaded.inputs[0].feature_shifts == program.inputs[0].feature_shifts and loaded.hash == program.hash
    assert np.array_equal(InferenceSession(loaded).run(None, {"X": features[400:]})[0],
                          InferenceSession(program).run(None, {"X": features[400:]})[0])
    assert InferenceSession(loaded, path="fast").run_fixed({"X": features[400:]}).commitment == \
        InferenceSession(loaded, path="reference").run_fixed({"X": features[400:]}).commitment
    with pytest.raises(ProgramFormatError, match="format version 2 does not match"):
        Program.from_bytes(data[:3] + bytes([2]) + data[4:])  # a format-2 reader would quantize it wrongly
    for bad in ([1, 2], [-1] * 30, [40] * 30, [0.5] * 30):
        with pytest.raises(ProgramFormatError, match="malformed feature_shifts"):
            Program.from_bytes(with_input_field(data, "feature_shifts", bad))


def with_input_field(data: bytes, key: str, value) -> bytes:
    """The program bytes with its first input's header field `key` set to `value` (the header re-encoded)."""
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + length])
    header["inputs"][0][key] = value
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return data[:4] + struct.pack("<I", len(encoded)) + encoded + data[8 + length:]


def test_an_out_of_range_feature_is_named_in_its_own_units(cancer):
    features, labels = cancer
    program = compile_model(next(sklearn_models(features[:400], labels[:400])), calibration={"X": features[:400]})
    small = int(np.argmax(program.inputs[0].feature_shifts))
    rows = features[400:402].copy()
    rows[1, small] = 50 * features[:400, small].max()  # fine for the shared scale, far beyond this feature's
    with pytest.raises(OutOfRangeError, match=f"input 'X' feature {small}: .* outside the program's range"):
        InferenceSession(program).run(None, {"X": rows})


def test_inputs_the_pass_cannot_serve_keep_one_scale():
    """Shifts only where every reader takes them, only for consistently non-zero features, only beyond a 2**6
    spread: a Sigmoid reading the input, sparse features (a border pixel), and image-like features keep one
    scale, and their programs keep format 1."""
    rng = np.random.default_rng(1)
    wide = (rng.uniform(0.5, 1, (64, 3)) * [1e3, 1.0, 1e-3]).astype(np.float32)
    sparse = rng.uniform(0.5, 1, (64, 3)).astype(np.float32)
    sparse[8:, 2] = 0  # non-zero in 8 of 64 samples
    sparse[:8, 2] *= 1e-3
    uniform = rng.uniform(0, 1, (64, 3)).astype(np.float32)
    for op, x in (("Sigmoid", wide), ("Relu", sparse), ("Relu", uniform)):
        # (a Relu alone passes the scale on to the graph output, which no shift may reach: a MatMul reads it)
        nodes = [helper.make_node(op, ["x"], ["h"]), helper.make_node("MatMul", ["h", "w"], ["y"])]
        model = helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
            [numpy_helper.from_array(np.ones((3, 1), np.float32), "w")]), opset_imports=[helper.make_opsetid("", 17)])
        program = compile_model(model, calibration={"x": x})
        assert program.inputs[0].feature_shifts is None
    relu_wide = compile_model(model, calibration={"x": wide})  # the same Relu + MatMul on wide features does
    assert relu_wide.inputs[0].feature_shifts == (0, 6, 16)


class BatchNormFirst(nn.Module):
    """A tabular net that normalizes its raw features with its first layer (BatchNorm1d)."""

    def __init__(self, features):
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(features), nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x)


class RawSequence(nn.Module):
    """An LSTM over a sequence of raw feature vectors (sensor readings of very different magnitudes)."""

    def __init__(self, features):
        super().__init__()
        self.lstm = nn.LSTM(features, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.lstm(x)[0][:, -1])


@pytest.mark.parametrize("dynamo", [False, True])
def test_batch_norm_first_and_an_lstm_read_raw_features_at_full_precision(cancer, dynamo):
    """Both readers take the shifts (BatchNormalization's scale and mean, the LSTM's input weights); the
    results are the float model's within 1% of the output's range, as for features of one magnitude."""
    features, _ = cancer
    torch.manual_seed(0)
    batch_norm = BatchNormFirst(30).eval()
    with torch.no_grad():  # running statistics of the data, as training leaves them
        batch_norm.net[0].running_mean.copy_(torch.from_numpy(features.mean(0)))
        batch_norm.net[0].running_var.copy_(torch.from_numpy(features.var(0)))
    sequences = features[:480].reshape(120, 4, 30)
    for model, x in ((batch_norm, features[:400]), (RawSequence(30).eval(), sequences)):
        exported = export(model, x[:2], dynamo)
        name = exported.graph.input[0].name
        program = compile_model(exported, calibration={name: x})
        assert program.inputs[0].feature_shifts is not None and max(program.inputs[0].feature_shifts) >= 8
        ours, reference = InferenceSession(program).run(None, {name: x})[0], ort_run(exported, {name: x})[0]
        assert np.max(np.abs(ours - reference)) <= 0.01 * np.max(np.abs(reference))


def export(model, example, dynamo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(model, (torch.from_numpy(example),), dynamo=True, verbose=False,
                                     input_names=["x"], dynamic_shapes=({0: torch.export.Dim("n", min=2)},)).model_proto
        buffer = io.BytesIO()
        torch.onnx.export(model, (torch.from_numpy(example),), buffer, input_names=["x"], dynamic_axes={"x": {0: "n"}},
                          dynamo=False)
        return onnx.load_from_string(buffer.getvalue())
