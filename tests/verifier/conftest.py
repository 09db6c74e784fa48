"""Fixtures shared by the verifier tests: digits models trained once per session, exported by torch."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from verifier_helpers import EXAMPLES, ROOT


def _example_script():
    spec = importlib.util.spec_from_file_location("make_example_model", ROOT / "scripts" / "make_example_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example_script():
    return _example_script()


@pytest.fixture(scope="session")
def digits(example_script):
    return example_script.load_digits_split()


@pytest.fixture(scope="session")
def digits_models(example_script, digits, tmp_path_factory):
    """name -> ONNX path: the CNN and the MLP, each from the TorchScript (opset 17) and dynamo (18) exporters."""
    x_train, _, y_train, _ = digits
    out = tmp_path_factory.mktemp("digits")
    models = {"cnn": example_script.train_cnn(x_train, y_train), "mlp": example_script.train_mlp(x_train, y_train)}
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in models.items():
            paths[f"{name}_torchscript"] = example_script.export(model, out / f"{name}_ts.onnx", dynamo=False, opset=17)
            paths[f"{name}_dynamo"] = example_script.export(model, out / f"{name}_dynamo.onnx", dynamo=True, opset=18)
    return paths


@pytest.fixture(scope="session")
def example_program():
    from verifier import compile_model

    with np.load(EXAMPLES / "digits_calibration.npz") as data:
        calibration = {"input": data["input"]}
    return compile_model(EXAMPLES / "digits_cnn.onnx", calibration=calibration)


@pytest.fixture(scope="session")
def example_inputs():
    with np.load(EXAMPLES / "digits_inputs.npz") as data:
        return {"input": data["input"]}


@pytest.fixture(params=["direct", "general"])
def small_products(request, monkeypatch):
    """Both ways a small fused GEMM or convolution runs: its one compiled loop (kernels/direct.py, the default below
    the work limits) and the general kernels it replaces there (limits 0), which larger products take."""
    from verifier.kernels import direct

    if request.param == "general":
        monkeypatch.setattr(direct, "GEMM_MAX_WORK", 0)
        monkeypatch.setattr(direct, "CONV_MAX_WORK", 0)
    return request.param
