"""The light_* architectures shipped in the onnx wheel (random-weight ResNet-50, SqueezeNet, ShuffleNet,
Inception, DenseNet, VGG, AlexNet, ZFNet) compile and run, with outputs that match onnxruntime.

Their logits are huge (random weights: up to ~1e31), so each model is checked twice: the trunk (without the
final Softmax) against onnxruntime's logits at 1% of their largest magnitude, and the whole model with its
Softmax, whose output must be finite and within 0.02 of onnxruntime's probabilities."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
FAST = ["light_squeezenet", "light_shufflenet", "light_resnet50"]
SLOW = ["light_inception_v1", "light_inception_v2", "light_densenet121", "light_bvlc_alexnet"]
# light_vgg19 (143M parameters, ~1 min to compile) and light_zfnet512 run in scripts/bench_verifier.py only.
def _feeds(model):
    initializers = {t.name for t in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    shape = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    calibration = {graph_input.name: rng.uniform(0, 1, [4 * shape[0]] + shape[1:]).astype(np.float32)}
    return calibration, {graph_input.name: rng.uniform(0, 1, shape).astype(np.float32)}


def _trunk(model):
    trunk = onnx.ModelProto()
    trunk.CopyFrom(model)
    last = trunk.graph.node[-1]
    if last.op_type == "Softmax":
        trunk.graph.output[0].name = last.input[0]
        trunk.graph.node.remove(last)
    return trunk


def check_trunk(name):
    model = _trunk(onnx.load(str(LIGHT / f"{name}.onnx")))
    calibration, x = _feeds(model)
    fixed = InferenceSession(compile_model(model, calibration=calibration)).run(None, x)[0]
    reference = ort_run(model, x)[0]
    assert fixed.shape == reference.shape and np.all(np.isfinite(fixed))
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference))


def check_whole(name):
    model = onnx.load(str(LIGHT / f"{name}.onnx"))
    calibration, x = _feeds(model)
    fixed = InferenceSession(compile_model(model, calibration=calibration)).run(None, x)[0]
    reference = ort_run(model, x)[0]
    assert fixed.shape == reference.shape and np.all(np.isfinite(fixed))
    assert np.max(np.abs(fixed - reference)) <= 0.02


@pytest.mark.parametrize("name", FAST)
def test_light_model_trunk_matches_onnxruntime(name):
    check_trunk(name)


@pytest.mark.parametrize("name", FAST)
def test_light_model_with_its_softmax_matches_onnxruntime(name):
    check_whole(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_larger_light_model_trunk_matches_onnxruntime(name):
    check_trunk(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_larger_light_model_with_its_softmax_matches_onnxruntime(name):
    check_whole(name)
