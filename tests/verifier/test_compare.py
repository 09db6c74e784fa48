"""The compile-time accuracy report (verifier/compare.py, printed by `vinfer compile --calibrate`): the
program's outputs against onnxruntime float32 on the calibration inputs."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import compile_model
from verifier.compare import against_float
from verifier_helpers import EXAMPLES


def fixed_batch_classifier(batch: int):
    """x (batch, 6) -> MatMul -> logits (batch, 5), with a fixed batch size."""
    weight = numpy_helper.from_array(np.random.default_rng(2).normal(0, 1, (6, 5)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "fixed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 5])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def example_calibration():
    with np.load(EXAMPLES / "digits_calibration.npz") as data:
        return {"input": data["input"]}


def test_the_report_measures_the_error_an_8_bit_program_adds(example_calibration):
    model = EXAMPLES / "digits_cnn.onnx"
    wide = against_float(model, compile_model(model, calibration=example_calibration), example_calibration)
    narrow = against_float(model, compile_model(model, calibration=example_calibration, matmul_bits=8),
                           example_calibration)
    (wide,), (narrow,) = wide, narrow
    assert wide.name == "logits" and wide.top1_agreement == 1.0 and narrow.top1_agreement >= 0.99
    assert wide.relative < 1e-3 < narrow.relative < 0.05 and narrow.max_error > wide.max_error


def test_a_model_with_a_fixed_batch_size_is_compared_in_chunks_of_it():
    model = fixed_batch_classifier(2)
    x = np.random.default_rng(3).normal(0, 1, (7, 6)).astype(np.float32)  # 3 chunks of 2; the odd one left out
    program = compile_model(model, calibration={"x": x[:6].reshape(3, 2, 6)[0]})
    (error,) = against_float(model, program, {"x": x})
    assert error.samples == 6 and error.top1_agreement is not None and error.relative < 1e-3
