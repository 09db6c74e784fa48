"""Layers torch models use beyond the issue's list, exported by both torch.onnx exporters, compile and match
onnxruntime: a sentence-embedding head (masked mean pooling, F.normalize: ReduceL2), GroupNorm and
InstanceNorm2d (InstanceNormalization), a ConvTranspose2d decoder, einsum attention, cumsum positions,
bilinear and bicubic upsampling (Resize linear / cubic), a LLaMA-style decoder exported with dynamic batch and
length (rotary embeddings from torch.arange: Range, Sin, Cos; RMSNorm; SwiGLU; a causal mask) run at two
lengths, PixelShuffle (DepthToSpace), one_hot, in-place index assignment (ScatterND), a spatial transformer
(affine_grid, grid_sample: GridSample), T5 relative position buckets (Log of run-time distances) and ALiBi biases
with a finfo.min causal mask, finite -1e4 / -10000 masks (GPT-2's causal fill, BERT's additive padding mask),
LocalResponseNorm (whose torchscript export tests the input's rank in an
If: folded to its branch)."""

import io
import logging
import math
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


class RMSNorm(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(dims))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rotary(x):
    """Rotary position embeddings with the angles computed from torch.arange at run time."""
    length, dims = x.shape[-2], x.shape[-1]
    inverse = 1.0 / (10000 ** (torch.arange(0, dims, 2, dtype=torch.float32) / dims))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inverse[None, :]
    even, odd = x[..., ::2], x[..., 1::2]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)


class TinyLlama(nn.Module):
    def __init__(self, vocab=50, dims=32, heads=4):
        super().__init__()
        self.embedding, self.heads = nn.Embedding(vocab, dims), heads
        self.norm1, self.norm2 = RMSNorm(dims), RMSNorm(dims)
        self.qkv, self.out = nn.Linear(dims, 3 * dims, bias=False), nn.Linear(dims, dims, bias=False)
        self.gate, self.up = nn.Linear(dims, 64, bias=False), nn.Linear(dims, 64, bias=False)
        self.down = nn.Linear(64, dims, bias=False)
        self.head = nn.Linear(dims, vocab, bias=False)

    def forward(self, ids):
        x = self.embedding(ids)
        batch, length, dims = x.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(self.norm1(x)).split(dims, -1))
        scores = rotary(q) @ rotary(k).transpose(-1, -2) / math.sqrt(dims // self.heads)
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        attention = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
        x = x + self.out(attention.transpose(1, 2).reshape(batch, length, dims))
        h = self.norm2(x)
        return self.head(x + self.down(F.silu(self.gate(h)) * self.up(h)))[:, -1]


def t5_buckets(relative, buckets=16, max_distance=32):
    """T5's bucket of each relative position: exact up to buckets / 2, logarithmic beyond."""
    distance = torch.clamp(-relative, min=0)
    exact = buckets // 2
    far = exact + (torch.log(distance.float() / exact + 1e-6) / math.log(max_distance / exact)
                   * (buckets - exact)).to(torch.long)
    return torch.where(distance < exact, distance, torch.clamp(far, max=buckets - 1))


class PositionBiasedAttention(nn.Module):
    """Attention with a position bias: T5's learned bucket biases, or ALiBi's slopes with a finfo.min mask."""

    def __init__(self, alibi: bool):
        super().__init__()
        self.alibi = alibi
        self.embedding, self.qkv, self.out = nn.Embedding(50, 16), nn.Linear(16, 48), nn.Linear(16, 4)
        self.buckets = nn.Embedding(16, 2)
        self.register_buffer("slopes", torch.tensor([0.5, 0.25]))

    def forward(self, ids):
        x = self.embedding(ids)
        batch, length, _ = x.shape
        positions = torch.arange(length)
        relative = positions[None, :] - positions[:, None]
        q, k, v = self.qkv(x).view(batch, length, 3, 2, 8).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / 8**0.5
        if self.alibi:
            scores = scores - self.slopes[:, None, None] * relative.abs().float()[None]
            future = torch.ones(length, length, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(future, torch.finfo(torch.float32).min)
        else:
            scores = scores + self.buckets(t5_buckets(relative)).permute(2, 0, 1)[None]
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, 16).mean(1))


class FiniteMaskAttention(nn.Module):
    """Attention masked as older Hugging Face exports do it: GPT-2 fills the causal mask with -1e4, BERT adds
    (1 - padding) * -10000 to the scores."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal
        self.embedding, self.qkv, self.out = nn.Embedding(50, 16), nn.Linear(16, 48), nn.Linear(16, 4)

    def forward(self, ids):
        x = self.embedding(ids)
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, 2, 8).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / 8**0.5
        if self.causal:
            keep = torch.tril(torch.ones(length, length)).bool()
            scores = torch.where(keep, scores, torch.tensor(-1e4))
        else:
            padding = (ids != 0).float()[:, None, None, :]
            scores = scores + (1.0 - padding) * -10000.0
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, 16).mean(1))


class Rearranging(nn.Module):
    """PixelShuffle / PixelUnshuffle, one_hot of token ids and an in-place masked assignment."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.embed = nn.Linear(6, 8)

    def forward(self, x):
        y = nn.functional.pixel_unshuffle(nn.functional.pixel_shuffle(self.conv(x), 2), 2).clone()
        y[:, 0] = 0.0
        ids = (x[:, 0, 0, :].abs() * 2).long().clamp(max=5)
        return y.flatten(1)[:, :8] + self.embed(F.one_hot(ids, 6).float()).mean(1)


class SpatialTransformer(nn.Module):
    """A localisation net predicts an affine map; the input is resampled through it."""

    def __init__(self):
        super().__init__()
        self.locate = nn.Linear(3 * 8 * 8, 6)
        nn.init.zeros_(self.locate.weight)
        with torch.no_grad():
            self.locate.bias.copy_(torch.tensor([0.9, 0.1, 0.05, -0.1, 0.8, -0.05]))

    def forward(self, x):
        theta = (self.locate(x.flatten(1)) + 0.05 * x.mean()).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def export(model, example, dynamo, dynamic=None, opset=17):
    """The model exported with its input named x; `dynamic`: {axis: name} of the input's dynamic dims;
    `opset`: the torchscript exporter's (the dynamo exporter picks its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.disable(logging.WARNING)
            dims = ({axis: torch.export.Dim(name, min=2, max=64) for axis, name in dynamic.items()},) if dynamic \
                else None
            try:
                return torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["x"],
                                         dynamic_shapes=dims).model_proto
            finally:
                logging.disable(logging.NOTSET)
        buffer = io.BytesIO()
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                          dynamic_axes={"x": dynamic} if dynamic else None)
        return onnx.load_from_string(buffer.getvalue())


def check(model, calibration, inputs, ops):
    """The model exports `ops`, compiles on `calibration` and matches onnxruntime on each of `inputs` (one
    array or a list, of any shapes the model takes)."""
    assert ops <= {node.op_type for node in model.graph.node}
    session = InferenceSession(compile_model(model, calibration={"x": calibration}))
    for x in inputs if isinstance(inputs, list) else [inputs]:
        fixed, reference = session.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
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


# name: (module, input shape after the batch, ops its export must hold, the torchscript exporter's opset)
FLOAT_INPUT_MODELS = {
    "group and instance norm with transposed convolutions": (NormalizedCNN, (3, 6, 6),
                                                             {"InstanceNormalization", "ConvTranspose"}, 17),
    "einsum attention with cumsum": (EinsumAttention, (6, 16), {"Einsum", "CumSum"}, 17),
    "bilinear and bicubic upsampling": (SegmentationHead, (3, 12, 12), {"Resize"}, 17),
    "pixel shuffle, one_hot and index assignment": (Rearranging, (3, 4, 6), {"DepthToSpace"}, 17),
    "spatial transformer": (SpatialTransformer, (3, 8, 8), {"GridSample"}, 20),  # (affine_grid: opset 20)
}


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("name", list(FLOAT_INPUT_MODELS))
def test_float_input_model_matches(name, dynamo):
    module, shape, ops, opset = FLOAT_INPUT_MODELS[name]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2,) + shape).astype(np.float32)
    model = export(module().eval(), torch.from_numpy(x), dynamo, opset=opset)
    check(model, rng.standard_normal((8,) + shape).astype(np.float32), x, ops)


@pytest.mark.parametrize("dynamo", [False, True])
def test_llama_style_decoder_with_dynamic_length_matches_at_two_lengths(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = export(TinyLlama().eval(), torch.randint(1, 50, (2, 8)), dynamo, dynamic={0: "batch", 1: "length"})
    lengths = [rng.integers(1, 50, shape).astype(np.int64) for shape in ((2, 8), (3, 13))]
    check(model, rng.integers(1, 50, (8, 8)).astype(np.int64), lengths, {"Range", "Sin", "Cos"})


@pytest.mark.parametrize("dynamo", [False, True])
def test_local_response_norm_with_its_rank_test_matches(dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.LocalResponseNorm(3), nn.LayerNorm([8, 4, 4])).eval()
    model = export(module, torch.from_numpy(x), dynamo)
    assert dynamo or "If" in {node.op_type for node in model.graph.node}
    check(model, np.concatenate([x, rng.standard_normal((6, 3, 6, 6)).astype(np.float32)]), x, set())


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("alibi", [False, True])
def test_position_biased_attention_with_dynamic_length_matches(alibi, dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = export(PositionBiasedAttention(alibi).eval(), torch.randint(1, 50, (2, 9)), dynamo,
                   dynamic={0: "batch", 1: "length"})
    lengths = [rng.integers(1, 50, shape).astype(np.int64) for shape in ((2, 9), (3, 14))]
    check(model, rng.integers(1, 50, (8, 9)).astype(np.int64), lengths, set() if alibi else {"Log"})


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("causal", [True, False])
def test_finite_attention_masks_weigh_exactly_zero(causal, dynamo):
    """The masked scores lie 1e4 below the others: their float32 softmax weight underflows to 0, and the
    compiler gives them -inf's place instead of letting them set the scores' scale (compiler/ranges.py)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (8, 9)).astype(np.int64)
    ids[::2, 6:] = 0  # padding
    model = export(FiniteMaskAttention(causal).eval(), torch.from_numpy(ids[:2]), dynamo,
                   dynamic={0: "batch", 1: "length"})
    check(model, ids, [ids[:2], ids[2:5]], set())
