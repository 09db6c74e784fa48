"""A MaxPool that alone reads a Conv's output fuses into the Conv (compiler/fuse.py, attrs "pool"). The fused
im2col product is pooled before its epilogue - the epilogue's rounding is monotone, so the largest product of a
window rounds to the window's largest result - and every other path pools the activations: on every path the
integers of conv then max_pool, and the fused program's outputs are the unfused program's."""

import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import verifier.compiler
from verifier import InferenceSession, compile_model
from verifier.kernels import conv, convolution, depthwise, direct, limbs, loops, max_pool, prepare, winograd
from verifier.kernels.epilogue import Requantize
from verifier_helpers import ort_run
from test_kernels_conv import Q15, edge_values

POOLS = [  # (kernel_shape, strides, pads, dilations, ceil_mode)
    ((3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 0),
    ((2, 2), (2, 2), (0, 0, 1, 1), (1, 1), 1),
    ((3, 2), (1, 2), (1, 0, 1, 1), (2, 1), 0),
]
PATHS = {  # name: (x shape, w shape, conv strides, pads, group, the path's function)
    "im2col": ((2, 3, 13, 12), (5, 3, 3, 3), (2, 1), (1, 1, 1, 1), 1, "_pooled_then_finished"),
    "bands": ((6, 3, 9, 8), (5, 3, 3, 3), (1, 1), (1, 1, 1, 1), 1, "_im2col_in_bands"),  # (pooled after)
    "winograd": ((2, 4, 10, 9), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), 1, "winograd.conv3x3"),
    "depthwise": ((2, 4, 11, 10), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), 4, "depthwise.conv_compiled"),
    "limbs": ((2, 8, 9, 9), (5, 8, 3, 3), (1, 1), (1, 1, 1, 1), 1, "limbs.conv2d"),
    "direct": ((2, 4, 9, 8), (6, 2, 3, 3), (1, 2), (1, 1, 0, 1), 2, "loops.conv_requantize"),
}


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("case", PATHS)
def test_a_fused_max_pool_gives_the_integers_of_max_pool_after_the_convolution(case, pool, relu, monkeypatch):
    x_shape, w_shape, strides, pads, group, kernel = PATHS[case]
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1 if case == "winograd" else 1 << 20)
    monkeypatch.setattr(winograd, "TILES_PER_CHANNEL", 1 << 20)
    monkeypatch.setattr(winograd, "MIN_TILES_PER_IMAGE", 1)
    monkeypatch.setattr(convolution, "COLUMN_BAND_BYTES", 3000 if case == "bands" else 1 << 40)
    monkeypatch.setenv(limbs.ENVIRONMENT, "always" if case == "limbs" else "off")
    monkeypatch.setattr(direct, "CONV_MAX_WORK", direct.CONV_MAX_WORK if case == "direct" else 0)
    owner, _, name = kernel.rpartition(".")
    module = {"": convolution, "winograd": winograd, "limbs": limbs, "depthwise": depthwise, "loops": loops}[owner]
    calls, original = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args, **kwargs: calls.append(name) or original(*args, **kwargs))
    rng = np.random.default_rng(len(case) + len(pool[0]) + relu)
    x, w = edge_values(rng, x_shape, Q15), prepare(edge_values(rng, w_shape, Q15))
    for shift, bias in ((13, rng.integers(-(1 << 40), 1 << 40, w_shape[0])), (0, None)):
        spec = Requantize(shift, 16, relu, bias)
        geometry = dict(strides=strides, pads=pads, group=group, x_bound=Q15, x_range=(-Q15, Q15), requantize=spec)
        kernel_shape, pool_strides, pool_pads, dilations, ceil_mode = pool
        expected = max_pool(conv(x, w, **geometry), kernel_shape, strides=pool_strides, pads=pool_pads,
                            dilations=dilations, ceil_mode=bool(ceil_mode))
        calls.clear()
        fused = conv(x, w, **geometry, pool={"kernel_shape": kernel_shape, "strides": pool_strides, "pads": pool_pads,
                                             "dilations": dilations, "ceil_mode": ceil_mode})
        assert np.array_equal(fused, expected)
        assert calls or (case in ("limbs", "direct") and shift == 0)  # (both round by shifting: shifts of 1..62)


class Stem(nn.Module):
    """Conv-Relu-MaxPool (fused), Conv-MaxPool (fused), and a Conv whose output a MaxPool shares (not fused)."""

    def __init__(self):
        super().__init__()
        self.first, self.second, self.shared = nn.Conv2d(3, 6, 3, stride=2), nn.Conv2d(6, 5, 3, padding=1), nn.Conv2d(5, 4, 1)

    def forward(self, x):
        y = nn.functional.max_pool2d(torch.relu(self.first(x)), 3, 2, ceil_mode=True)
        y = nn.functional.max_pool2d(self.second(y), 2, 1, padding=1)
        z = self.shared(y)
        return nn.functional.max_pool2d(z, 2).flatten(1).sum(1, keepdim=True) + z.mean(dim=(1, 2, 3)).unsqueeze(1)


@pytest.fixture(scope="module")
def stem():
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(Stem().eval(), (torch.randn(1, 3, 29, 27),), buffer, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def test_only_a_pool_that_alone_reads_a_conv_fuses_and_the_program_agrees_with_the_unfused_one(stem, monkeypatch):
    rng = np.random.default_rng(1)
    calibration, x = rng.standard_normal((32, 3, 29, 27)).astype(np.float32), rng.standard_normal((5, 3, 29, 27))
    x = x.astype(np.float32)
    fused = compile_model(stem, calibration={"x": calibration})
    pooled = [node for node in fused.nodes if "pool" in node.attrs]
    assert [node.op for node in pooled] == ["Conv", "Conv"] and [n.op for n in fused.nodes].count("MaxPool") == 1
    assert pooled[0].attrs["relu"] == 1 and pooled[0].attrs["pool"]["ceil_mode"] == 1
    monkeypatch.setattr(verifier.compiler, "fuse_max_pool", lambda program: program)
    unfused = compile_model(stem, calibration={"x": calibration})
    assert [n.op for n in unfused.nodes].count("MaxPool") == 3
    ours, theirs = InferenceSession(fused), InferenceSession(unfused)
    assert ours.run_fixed({"x": x}).output_bytes == theirs.run_fixed({"x": x}).output_bytes
    assert ours.run_trace({"x": x}) == InferenceSession(fused, path="reference").run_trace({"x": x})
    reference = ort_run(stem, {"x": x})[0]
    assert np.max(np.abs(ours.run(None, {"x": x})[0] - reference)) <= 0.02 * np.max(np.abs(reference))


def test_a_fused_pool_is_charged_as_the_pool_was(stem, monkeypatch):
    from verifier import interpreter
    from verifier.cost import NODE_BASE
    from verifier.session import integer_feeds

    rng = np.random.default_rng(2)
    calibration = rng.standard_normal((16, 3, 29, 27)).astype(np.float32)
    feeds = {"x": rng.standard_normal((3, 3, 29, 27)).astype(np.float32)}
    fused = compile_model(stem, calibration={"x": calibration})
    monkeypatch.setattr(verifier.compiler, "fuse_max_pool", lambda program: program)
    unfused = compile_model(stem, calibration={"x": calibration})
    units = []
    for program in (fused, unfused):
        stats = {}
        interpreter.execute(program, integer_feeds(program, feeds), stats=stats)
        units.append(stats["units"])
    # the same work, less the two pools' node bases and their padded copies (the fused loop makes none)
    assert units[1] - 2 * NODE_BASE - units[1] // 20 <= units[0] <= units[1]
