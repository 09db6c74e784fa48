"""Whole digits models: fixed-point top-1 agrees with onnxruntime float and keeps its accuracy."""

import numpy as np
import pytest

from verifier_helpers import EXAMPLES, ort_run
from verifier import InferenceSession, compile_model

MODELS = ["cnn_torchscript", "cnn_dynamo", "mlp_torchscript", "mlp_dynamo"]


@pytest.mark.parametrize("name", MODELS)
def test_fixed_point_top1_agrees_with_onnxruntime_on_digits(name, digits_models, digits):
    x_train, x_test, _, y_test = digits
    path = digits_models[name]
    session = InferenceSession(compile_model(path, calibration={"input": x_train[:256]}))
    fixed = session.run(None, {"input": x_test})[0]
    reference = ort_run(path, {"input": x_test})[0]
    agreement = float(np.mean(fixed.argmax(1) == reference.argmax(1)))
    assert agreement >= 0.995, f"{name}: top-1 agreement {agreement:.4f}"


@pytest.mark.parametrize("name", MODELS)
def test_fixed_point_accuracy_drops_at_most_half_a_point(name, digits_models, digits):
    x_train, x_test, _, y_test = digits
    path = digits_models[name]
    session = InferenceSession(compile_model(path, calibration={"input": x_train[:256]}))
    fixed_accuracy = float(np.mean(session.run(None, {"input": x_test})[0].argmax(1) == y_test))
    float_accuracy = float(np.mean(ort_run(path, {"input": x_test})[0].argmax(1) == y_test))
    assert float_accuracy > 0.9
    assert fixed_accuracy >= float_accuracy - 0.005


def test_bundled_example_model_classifies_its_inputs_like_onnxruntime(example_program, example_inputs):
    fixed = InferenceSession(example_program).run(None, example_inputs)[0]
    reference = ort_run(EXAMPLES / "digits_cnn.onnx", example_inputs)[0]
    assert np.array_equal(fixed.argmax(1), reference.argmax(1))
    assert np.max(np.abs(fixed - reference)) < 0.05 * np.max(np.abs(reference))


def test_uncalibrated_compile_still_classifies_digits(digits_models, digits):
    _, x_test, _, _ = digits
    path = digits_models["mlp_torchscript"]
    fixed = InferenceSession(compile_model(path)).run(None, {"input": x_test})[0]
    reference = ort_run(path, {"input": x_test})[0]
    assert float(np.mean(fixed.argmax(1) == reference.argmax(1))) >= 0.98


@pytest.fixture(scope="module")
def sklearn_mlp(tmp_path_factory, digits):
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    x_train, x_test, y_train, y_test = digits
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    classifier = MLPClassifier((32,), max_iter=300, random_state=0).fit(flat_train, y_train)
    model = to_onnx(classifier, flat_train[:1], options={"zipmap": False}, target_opset=17)
    path = tmp_path_factory.mktemp("skl") / "mlp.onnx"
    path.write_bytes(model.SerializeToString())
    return path, flat_train, flat_test, y_test


def test_skl2onnx_mlp_classifier_labels_and_probabilities_match_onnxruntime(sklearn_mlp):
    path, flat_train, flat_test, y_test = sklearn_mlp
    session = InferenceSession(compile_model(path, calibration={"X": flat_train[:256]}))
    labels, probabilities = session.run(None, {"X": flat_test})
    reference_labels, reference_probabilities = ort_run(path, {"X": flat_test})
    assert labels.dtype == np.int64
    assert float(np.mean(labels == reference_labels)) >= 0.995
    assert float(np.mean(labels == y_test)) >= float(np.mean(reference_labels == y_test)) - 0.005
    assert np.max(np.abs(probabilities - reference_probabilities)) < 0.01


def test_session_takes_onnxruntime_call_sites_unchanged(example_program, example_inputs, tmp_path):
    example_program.save(tmp_path / "p.vfp")
    session = InferenceSession(str(tmp_path / "p.vfp"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (logits,) = session.run([session.get_outputs()[0].name], {name: example_inputs["input"]}, None)
    assert logits.dtype == np.float32 and session.get_inputs()[0].type == "tensor(float)"
    assert np.array_equal(logits, InferenceSession(example_program).run(None, example_inputs)[0])
