"""Layers a torch CNN/MLP uses, exported by both torch.onnx exporters over opsets 13-21, compile and match
onnxruntime: every Conv2d padding_mode, BatchNorm, depthwise and 1-D convs, pools, ReLU6/hardtanh,
LeakyReLU, SiLU, Dropout, concat, slicing, permute, view with a dynamic batch (Shape subgraphs)."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run


class Blocks(nn.Module):
    def __init__(self, padding_mode: str = "zeros"):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode=padding_mode)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.conv1d = nn.Conv1d(8, 4, 3, stride=2, padding=1, dilation=1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.head = nn.Linear(4 * 3 + 8, 5)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = nn.functional.hardtanh(self.depthwise(y), -2.0, 2.0) + nn.functional.relu6(y)
        y = nn.functional.leaky_relu(self.avg(self.pool(y)), 0.1)
        y = y * torch.sigmoid(y)
        pooled = nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        rows = y.permute(0, 1, 3, 2)[:, :, 1:, :].reshape(y.shape[0], 8, -1)
        z = self.conv1d(rows)[:, :, :3]
        z = z.reshape(z.shape[0], -1)
        return self.head(self.dropout(torch.cat([z, pooled], dim=1)))


def _export(model, path, dynamo: bool, opset: int):
    example = torch.randn(2, 3, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=["x"],
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},), verbose=False)
            program.save(str(path))
        else:
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return path


def _check(model, path):
    rng = np.random.default_rng(0)
    calibration = {"x": rng.standard_normal((32, 3, 6, 6)).astype(np.float32)}
    x = {"x": np.clip(rng.standard_normal((5, 3, 6, 6)), -3, 3).astype(np.float32)}
    fixed = InferenceSession(compile_model(path, calibration=calibration)).run(None, x)[0]
    reference = ort_run(path, x)[0]
    assert fixed.shape == reference.shape
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference)) + 1e-3


@pytest.fixture(scope="module")
def trained_blocks():
    torch.manual_seed(0)
    models = {}
    for mode in ("zeros", "reflect", "replicate", "circular"):
        model = Blocks(mode)
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        models[mode] = model.eval()
    return models


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_every_conv2d_padding_mode_exports_and_matches(mode, trained_blocks, tmp_path):
    _check(trained_blocks[mode], _export(trained_blocks[mode], tmp_path / "m.onnx", dynamo=False, opset=17))


@pytest.mark.slow
@pytest.mark.parametrize("opset", [13, 14, 15, 16, 17, 18, 19, 20, 21])
@pytest.mark.parametrize("dynamo", [False, True])
def test_layers_export_across_opsets_and_exporters(opset, dynamo, trained_blocks, tmp_path):
    if dynamo and opset < 18:
        pytest.skip("the dynamo exporter emits opset 18 and above")
    _check(trained_blocks["zeros"], _export(trained_blocks["zeros"], tmp_path / "m.onnx", dynamo=dynamo, opset=opset))


def test_dynamo_export_with_dynamic_batch_runs_any_batch(trained_blocks, tmp_path):
    _check(trained_blocks["reflect"], _export(trained_blocks["reflect"], tmp_path / "m.onnx", dynamo=True, opset=18))


def test_model_with_external_data_weights_loads(tmp_path, digits_models):
    import onnx

    model = onnx.load(str(digits_models["cnn_torchscript"]))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").stat().st_size > 1000
    rng = np.random.default_rng(1)
    calibration = {"input": rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)}
    from_external = compile_model(tmp_path / "ext.onnx", calibration=calibration)
    inline = compile_model(digits_models["cnn_torchscript"], calibration=calibration)
    assert from_external.nodes[0].consts["weight"].tolist() == inline.nodes[0].consts["weight"].tolist()


class Structural(nn.Module):
    """Upsample (Resize nearest), reductions, split, comparisons and where, on a dynamic batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        y = self.up(torch.relu(self.conv(x)))
        y = torch.max(y, dim=1, keepdim=True)[0] - y.min(dim=1, keepdim=True)[0] + y.sum(dim=(2, 3), keepdim=True) / 64
        a, b = torch.split(y, 2, dim=1)
        return torch.cat([a * 2 - b, torch.where(a > b, a, b)], 1).flatten(1)


class TokenModel(nn.Module):
    """Embedding lookup on int64 token ids (Gather), mean over tokens, a linear head."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


@pytest.mark.parametrize("dynamo", [False, True])
def test_structural_ops_from_torch_match_onnxruntime(dynamo, tmp_path):
    torch.manual_seed(1)
    model = Structural().eval()
    path = tmp_path / "structural.onnx"
    example = torch.randn(2, 3, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (example,), dynamo=True, opset_version=18, input_names=["x"], verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},)).save(str(path))
        else:
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    rng = np.random.default_rng(0)
    x = {"x": rng.standard_normal((3, 3, 4, 4)).astype(np.float32)}
    program = compile_model(path, calibration={"x": rng.standard_normal((16, 3, 4, 4)).astype(np.float32)})
    fixed, reference = InferenceSession(program).run(None, x)[0], ort_run(path, x)[0]
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference))


def test_embedding_on_int64_token_ids_matches_onnxruntime(tmp_path):
    torch.manual_seed(2)
    model = TokenModel().eval()
    path = tmp_path / "tokens.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 5, dtype=torch.int64),), str(path), dynamo=False, opset_version=17,
                          input_names=["ids"], dynamic_axes={"ids": {0: "batch", 1: "tokens"}})
    rng = np.random.default_rng(0)
    ids = {"ids": rng.integers(0, 30, (4, 7)).astype(np.int64)}
    session = InferenceSession(compile_model(path, calibration={"ids": rng.integers(0, 30, (32, 7)).astype(np.int64)}))
    assert session.get_inputs()[0].frac is None
    fixed, reference = session.run(None, ids)[0], ort_run(path, ids)[0]
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference))
