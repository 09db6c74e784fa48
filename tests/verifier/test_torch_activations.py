"""Every torch.nn activation, exported by torch.onnx.export (TorchScript exporter at opset 17, and the dynamo
exporter at its default opset, where Gelu and Mish are single ops), compiles and matches onnxruntime within
its error budget, in output steps.

The budget of a graph is derived, not tuned: 0.5 step for the final rounding, plus, for every intermediate
tensor T the program rounds to its scale 2**-f_T, the change of the output that half a step of T causes
(measured per element with onnxruntime by cutting the graph at T and nudging T by +-2**-(f_T+1)).
Single-node exports therefore get exactly 0.5 step (0.501 for Softmax/LogSoftmax, docs/fixed-point-nonlinear.md).
Test inputs are put on the program's input grid, so input quantization is not counted."""

import io
import logging
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from verifier import InferenceSession, compile_model
from verifier.fixedpoint import qmax
from verifier.ops import lookup

Q = qmax(16)
F32_ULP = 2.0**-23
BATCH, WIDTH = 8, 96

ACTIVATIONS = {
    "ReLU": torch.nn.ReLU(), "Sigmoid": torch.nn.Sigmoid(), "Tanh": torch.nn.Tanh(),
    "Softmax": torch.nn.Softmax(dim=1), "LogSoftmax": torch.nn.LogSoftmax(dim=1), "Softmin": torch.nn.Softmin(dim=1),
    "LeakyReLU": torch.nn.LeakyReLU(0.1), "ELU": torch.nn.ELU(0.8), "SELU": torch.nn.SELU(), "CELU": torch.nn.CELU(1.3),
    "Softplus": torch.nn.Softplus(), "Softsign": torch.nn.Softsign(), "Tanhshrink": torch.nn.Tanhshrink(),
    "LogSigmoid": torch.nn.LogSigmoid(), "Hardshrink": torch.nn.Hardshrink(0.4), "Softshrink": torch.nn.Softshrink(0.4),
    "Hardtanh": torch.nn.Hardtanh(-1.5, 2.0), "ReLU6": torch.nn.ReLU6(), "Threshold": torch.nn.Threshold(0.0, 0.0),
    "GELU": torch.nn.GELU(), "GELU-tanh": torch.nn.GELU(approximate="tanh"), "Hardswish": torch.nn.Hardswish(),
    "Hardsigmoid": torch.nn.Hardsigmoid(), "Mish": torch.nn.Mish(), "SiLU": torch.nn.SiLU(),
}


def export(module, dynamo: bool = False) -> onnx.ModelProto:
    example = (torch.zeros(BATCH, WIDTH),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.disable(logging.WARNING)  # the dynamo exporter reports its progress through logging
            try:
                return torch.onnx.export(module.eval(), example, dynamo=True, verbose=False,
                                         input_names=["x"], output_names=["y"]).model_proto
            finally:
                logging.disable(logging.NOTSET)
        buffer = io.BytesIO()
        torch.onnx.export(module.eval(), example, buffer, opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"])
    return onnx.load_from_string(buffer.getvalue())


def on_grid(x, frac):
    return (np.round(x.astype(np.float64) * 2.0**frac) * 2.0**-frac).astype(np.float32)


def ort_run(model, feeds, outputs=None):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def error_budget(model: onnx.ModelProto, fracs: dict, x: np.ndarray, f_out: int) -> np.ndarray:
    """Per output element, in output steps: 0.5 + sum over rounded intermediates of the effect of half a step."""
    graph = model.graph
    last = graph.node[-1]
    budget = np.full(ort_run(model, {"x": x})[0].shape, 0.501 if last.op_type in ("Softmax", "LogSoftmax") else 0.5)
    baseline = ort_run(model, {"x": x})[0].astype(np.float64)
    intermediates = [t for node in graph.node[:-1] for t in node.output if fracs.get(t) is not None]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend([onnx.helper.make_value_info(t, onnx.TypeProto()) for t in intermediates])
    values = dict(zip(intermediates, ort_run(exposed, {"x": x}, intermediates)))
    for name in intermediates:
        cut = _cut_at(model, name)
        half_step = 2.0 ** -(fracs[name] + 1)
        effects = [np.abs(ort_run(cut, {"x": x, name: (values[name] + s * half_step).astype(np.float32)})[0]
                          .astype(np.float64) - baseline) for s in (1, -1)]
        budget = budget + np.maximum(*effects) * 2.0**f_out
    return budget


def _cut_at(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The model with tensor `name` fed as an input instead of computed."""
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    for node in cut.graph.node:
        for i, out in enumerate(node.output):
            if out == name:
                node.output[i] = name + "__computed"
    cut.graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return cut


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    calibration = (rng.normal(0, 2.0, (64, WIDTH))).astype(np.float32)
    test = rng.normal(0, 2.0, (BATCH, WIDTH)).astype(np.float32)
    limit = float(np.max(np.abs(calibration)))
    test[0, :4] = [limit, -limit, 0.0, 0.4]  # range ends, zero, a shrink threshold
    return calibration, test


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_torch_activation_export_matches_onnxruntime_within_its_error_budget(name, data):
    check_within_budget(export(ACTIVATIONS[name]), data)


@pytest.mark.parametrize("name", ["GELU", "GELU-tanh", "Mish"])
def test_dynamo_export_with_single_gelu_or_mish_op_matches_onnxruntime(name, data):
    model = export(ACTIVATIONS[name], dynamo=True)
    assert len([n for n in model.graph.node if n.op_type != "Constant"]) == 1
    check_within_budget(model, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ACTIVATIONS) + ["Threshold-general"])
def test_dynamo_export_matches_onnxruntime_within_its_error_budget(name, data):
    module = torch.nn.Threshold(0.1, 2.0) if name == "Threshold-general" else ACTIVATIONS[name]
    check_within_budget(export(module, dynamo=True), data)


def check_within_budget(model, data):
    calibration, test = data
    missing = sorted({n.op_type for n in model.graph.node if n.op_type != "Constant" and lookup(n.op_type) is None})
    if missing:
        pytest.skip(f"the export uses ops not lowered yet (verifier core): {missing}")
    program = compile_model(model, calibration={"x": calibration})
    x = on_grid(test, program.inputs[0].frac)
    f_out = program.outputs[0].frac
    ours = InferenceSession(program).run_fixed({"x": x}).outputs["y"].astype(np.float64)
    reference = ort_run(model, {"x": x})[0].astype(np.float64) * 2.0**f_out
    budget = error_budget(model, program.fracs, x, f_out) + 4 * F32_ULP * np.abs(reference)
    inside = np.abs(reference) <= Q
    err = np.abs(ours - reference)
    assert np.all(err[inside] <= budget[inside]), f"max error {err[inside].max():.3f} steps vs budget {budget.min():.3f}"
    assert np.all(ours[~inside] == np.sign(reference[~inside]) * Q)


@pytest.mark.parametrize("name", ["Sigmoid", "Softmax", "GELU", "Mish"])
def test_torch_activation_program_is_deterministic(name, data):
    calibration, test = data
    model = export(ACTIVATIONS[name])
    first = compile_model(model, calibration={"x": calibration})
    second = compile_model(model, calibration={"x": calibration})
    assert first.hash == second.hash
    commitments = {InferenceSession(p).run_fixed({"x": test}).commitment for p in (first, second, first)}
    assert len(commitments) == 1
