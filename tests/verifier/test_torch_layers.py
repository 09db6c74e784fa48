"""Layers torch models use beyond the issue's list, exported by both torch.onnx exporters, compile and match
onnxruntime: a sentence-embedding head (masked mean pooling, F.normalize: ReduceL2), GroupNorm and
InstanceNorm2d (InstanceNormalization), a ConvTranspose2d decoder, einsum attention, cumsum positions,
bilinear and bicubic upsampling (Resize linear / cubic)."""

import io
import logging
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run


class SentenceEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(40, 16, padding_idx=0)
        self.dense = nn.Linear(16, 16)

    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).float()
        hidden = torch.tanh(self.dense(self.embedding(ids)))
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


class NormalizedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.group = nn.GroupNorm(2, 8)
        self.instance = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.out = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2)

    def forward(self, x):
        y = F.silu(self.group(self.conv(x)))
        y = F.relu(self.up(self.instance(y)))
        return self.out(y)


class EinsumAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.positions = nn.Parameter(torch.randn(16))

    def forward(self, x):
        q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 2, 8).unbind(2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / 8**0.5
        out = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(x.shape[0], x.shape[1], 16)
        return torch.cumsum(out, dim=1) + self.positions


class SegmentationHead(nn.Module):
    """Feature maps upsampled back to the input size, as FPN / U-Net decoders do."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = F.relu(self.down(x))
        coarse = F.interpolate(self.head(y), scale_factor=2, mode="bilinear", align_corners=False)
        fine = F.interpolate(y, size=(12, 12), mode="bilinear", align_corners=True)
        smooth = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
        return coarse + fine[:, :4] + smooth[:, 4:]


def export(model, example, dynamo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.disable(logging.WARNING)
            try:
                return torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["x"]).model_proto
            finally:
                logging.disable(logging.NOTSET)
        buffer = io.BytesIO()
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=17, input_names=["x"])
        return onnx.load_from_string(buffer.getvalue())


def check(model, calibration, x, ops):
    assert ops <= {node.op_type for node in model.graph.node}
    fixed = InferenceSession(compile_model(model, calibration={"x": calibration})).run(None, {"x": x})[0]
    reference = ort_run(model, {"x": x})[0]
    assert fixed.shape == reference.shape
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference)) + 1e-3


@pytest.mark.parametrize("dynamo", [False, True])
def test_sentence_embedding_with_l2_normalize_matches(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, (4, 9)).astype(np.int64)
    ids[:, 6:] = 0  # padding
    model = export(SentenceEmbedding().eval(), torch.from_numpy(ids), dynamo)
    check(model, rng.integers(0, 40, (4, 9)).astype(np.int64), ids, {"ReduceL2"})


@pytest.mark.parametrize("dynamo", [False, True])
def test_group_and_instance_norm_with_transposed_convolutions_match(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    model = export(NormalizedCNN().eval(), torch.from_numpy(x), dynamo)
    check(model, rng.standard_normal((8, 3, 6, 6)).astype(np.float32), x, {"InstanceNormalization", "ConvTranspose"})


@pytest.mark.parametrize("dynamo", [False, True])
def test_einsum_attention_with_cumsum_matches(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 16)).astype(np.float32)
    model = export(EinsumAttention().eval(), torch.from_numpy(x), dynamo)
    check(model, rng.standard_normal((8, 6, 16)).astype(np.float32), x, {"Einsum", "CumSum"})


@pytest.mark.parametrize("dynamo", [False, True])
def test_bilinear_and_bicubic_upsampling_match(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    model = export(SegmentationHead().eval(), torch.from_numpy(x), dynamo)
    check(model, rng.standard_normal((8, 3, 12, 12)).astype(np.float32), x, {"Resize"})
