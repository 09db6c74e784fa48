"""Narrow tensors (verifier/replays.py): on the fast path a replay keeps activations proven within 16 bits as int16
arrays between the ops that read them as they read int64 (Conv, MaxPool, GlobalAveragePool, Concat). The kernels
take an int16 operand as it is and write only finished values into an int16 `out`; the values, and so the bits,
are those of the int64 run."""

import io

import numpy as np
import onnx
import pytest
import torch
from test_kernels_conv import (CASES, WINOGRAD_CASES, edge_values, winograd_for_small_shapes,  # noqa: F401 (fixtures)
                               winograd_variant)
from torch import nn

from verifier import InferenceSession, Program, compile_model, interpreter, replays
from verifier.feeds import integer_feeds
from verifier.fixedpoint import qmax
from verifier.kernels import conv, limbs, prepare
from verifier.kernels.convolution import bind_conv
from verifier.kernels.epilogue import Requantize
from verifier.ops import conv as conv_op
from verifier.ops.maxpool import MaxPool

Q15 = qmax(16)


@pytest.fixture(params=["off", "always"])
def limb_setting(request, monkeypatch):
    monkeypatch.setenv(limbs.ENVIRONMENT, request.param)
    return request.param


def _narrow_runs_equal(bound, x: np.ndarray, expected: np.ndarray) -> None:
    """bound (x, out=None) on x as int64 and as int16, into no out and into an int16 one: the expected values, and the
    int16 out holds them whenever the kernel wrote into it."""
    assert bound.result_shape == expected.shape
    narrow = x.astype(np.int16)
    assert np.array_equal(bound(x), expected) and np.array_equal(bound(narrow), expected)
    out = np.full(expected.shape, 7, dtype=np.int16)
    result = bound(narrow, out)
    assert np.array_equal(result, expected)
    assert result is out or result.dtype == np.int64


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{case[1]}")
@pytest.mark.parametrize("shift", [14, 0, -1])  # (0, -1: epilogues some kernels apply after their loops)
def test_a_bound_convolution_reads_and_writes_int16(case, shift, limb_setting, small_products):
    x_shape, w_shape, strides, pads, dilations, group = case
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    w = prepare(edge_values(rng, w_shape, Q15 // 64 if shift > 0 else 3))
    spec = Requantize(shift, 16, False, rng.integers(-(1 << 30), 1 << 30, w_shape[0]))
    bound = bind_conv(x_shape, w, strides, pads, dilations, group, Q15, spec)
    if bound is None:  # (a 3-D depthwise convolution has no fused kernel)
        return
    x = edge_values(rng, x_shape, Q15)
    geometry = {"strides": strides, "pads": pads, "dilations": dilations, "group": group}
    _narrow_runs_equal(bound, x, conv(x, w, x_bound=Q15, requantize=spec, path="reference", **geometry))


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{case[1]}")
@pytest.mark.parametrize("shift", [14, 0, -1])
def test_conv_reads_int16_and_writes_into_an_int16_out(case, shift, limb_setting, small_products):
    """conv itself (a Conv's run: the interpreter's Concat slots give it `out`)."""
    x_shape, w_shape, strides, pads, dilations, group = case
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    w = prepare(edge_values(rng, w_shape, Q15 // 64 if shift > 0 else 3))
    spec = Requantize(shift, 16, True, rng.integers(-(1 << 30), 1 << 30, w_shape[0]))
    x = edge_values(rng, x_shape, Q15)
    geometry = {"strides": strides, "pads": pads, "dilations": dilations, "group": group, "requantize": spec}
    expected = conv(x, w, x_bound=Q15, path="reference", **geometry)
    out = np.full(expected.shape, 7, dtype=np.int16)
    result = conv(x.astype(np.int16), w, x_bound=Q15, out=out, **geometry)
    assert np.array_equal(result, expected) and (result is out or result.dtype == np.int64)


@pytest.mark.parametrize("case", WINOGRAD_CASES[:3], ids=lambda case: f"{case[0]}-{case[1]}")
@pytest.mark.parametrize("shift", [12, 0, -1])  # (0, -1: epilogues the transforms do not fuse, finished after them)
def test_a_bound_winograd_convolution_reads_and_writes_int16(case, shift, winograd_variant, limb_setting):
    x_shape, w_shape, pads = case
    rng = np.random.default_rng(sum(x_shape))
    w = prepare(edge_values(rng, w_shape, Q15))
    spec = Requantize(shift, 16, True, rng.integers(-(1 << 20), 1 << 20, w_shape[0]))
    bound = bind_conv(x_shape, w, (1, 1), pads, (1, 1), 1, Q15, spec)
    x = edge_values(rng, x_shape, Q15)
    _narrow_runs_equal(bound, x, conv(x, w, pads=pads, x_bound=Q15, requantize=spec, path="reference"))


@pytest.mark.parametrize("pool", [
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 1, 1], "dilations": [2, 1], "ceil_mode": 0},
])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_bound_convolution_and_its_max_pool_read_and_write_int16(batch, pool, limb_setting, small_products):
    rng = np.random.default_rng(batch)
    w = prepare(edge_values(rng, (8, 4, 3, 3), Q15 // 8))
    spec = Requantize(10, 16, False, rng.integers(-(1 << 30), 1 << 30, 8))
    x_shape = (batch, 4, 9, 8)
    bound = bind_conv(x_shape, w, (1, 1), (1, 1, 1, 1), (1, 1), 1, Q15, spec, pool)
    x = edge_values(rng, x_shape, Q15)
    _narrow_runs_equal(bound, x, conv(x, w, pads=(1, 1, 1, 1), x_bound=Q15, requantize=spec, pool=pool,
                                      path="reference"))


@pytest.mark.parametrize("x_shape,kernel,strides,pads,dilations,ceil_mode", [
    ((2, 3, 9, 8), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
    ((1, 4, 7, 7), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 1),
    ((1, 2, 11, 6), [3, 2], [1, 2], [2, 0, 0, 1], [2, 1], 0),
])
def test_a_bound_max_pool_reads_and_writes_int16(x_shape, kernel, strides, pads, dilations, ceil_mode):
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": dilations, "ceil_mode": ceil_mode}
    x = edge_values(np.random.default_rng(len(x_shape)), x_shape, Q15)
    x[..., 0] = -Q15 - 1  # (int16's least value: below it only the padding, which never wins)
    expected = MaxPool.run([x], attrs, {})[0]
    bound = MaxPool.bind([x_shape], attrs, {}, {})
    narrow = x.astype(np.int16)
    assert np.array_equal(bound([narrow])[0], expected) and bound([narrow])[0].dtype == np.int64
    result = bound.narrowed([narrow])[0]
    assert result.dtype == np.int16 and np.array_equal(result, expected)


class Net(nn.Module):
    """A fire module (squeeze, two expands joined), a max pool, a residual Add, a Flatten into a Linear, a pooled
    head, and Conv outputs that are also model outputs (one read by Convs alone): which tensors a replay keeps
    narrow."""

    def __init__(self):
        super().__init__()
        self.stem, self.squeeze = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 4, 1)
        self.expand1, self.expand3 = nn.Conv2d(4, 6, 1), nn.Conv2d(4, 6, 3, padding=1)
        self.residual, self.exposed = nn.Conv2d(12, 12, 3, padding=1), nn.Conv2d(12, 5, 1)
        self.dense = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x):
        stem = torch.relu(self.stem(x))
        s = torch.relu(self.squeeze(stem))
        fire = torch.cat([torch.relu(self.expand1(s)), torch.relu(self.expand3(s))], 1)
        pooled = nn.functional.max_pool2d(fire, 2)
        summed = torch.relu(self.residual(pooled)) + pooled
        exposed = self.exposed(summed)
        return self.dense(exposed.flatten(1)), summed.mean(dim=(2, 3)), exposed, stem


@pytest.fixture(scope="module", params=[16, 8], ids=["16-bit", "8-bit"])
def program(request):
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), buffer, input_names=["x"],
                      output_names=["y", "m", "e", "s"], opset_version=17, dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    calibration = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    return compile_model(onnx.load_from_string(buffer.getvalue()), calibration={"x": calibration},
                         matmul_bits=request.param)


def _narrow_made(program, feeds, monkeypatch) -> tuple:
    """(the tensors the fast replay of these feeds keeps narrow, (dtype of x, dtype of out or None) per call of a bound
    convolution, the third run's result)."""
    chosen, read = set(), []
    choose, bind = replays._narrow_tensors, conv_op.bind_conv

    def recording_choice(steps, output_names):
        chosen.update(choose(steps, output_names))
        return chosen

    def recording_bind(*arguments, **keywords):
        kernel = bind(*arguments, **keywords)
        if kernel is None:
            return None

        def reading(x, out=None):
            read.append((x.dtype, None if out is None else out.dtype))
            return kernel(x, out)

        reading.result_shape = kernel.result_shape
        return reading

    monkeypatch.setattr(replays, "_narrow_tensors", recording_choice)
    monkeypatch.setattr(conv_op, "bind_conv", recording_bind)
    session = InferenceSession(Program.from_bytes(program.to_bytes()))  # (its own replays, made here)
    for _ in range(3):
        result = session.run_fixed(feeds)
    return chosen, read, result


def _feeds(program, seed: int, batch: int, scale: float) -> dict:
    """Normal values times `scale`, clipped to the input's range: at a large scale most lie at its edges, and the
    activations they make saturate (int16's edge)."""
    info = program.inputs[0]
    limit = qmax(16) / 2.0 ** info.frac
    values = np.random.default_rng(seed).standard_normal((batch, 3, 8, 8)) * scale
    return {info.name: np.clip(values, -limit, limit).astype(np.float32)}


def test_a_replay_keeps_narrow_the_tensors_only_narrow_readers_read(program, monkeypatch):
    feeds = _feeds(program, 2, 2, 1.0)
    chosen, read, _ = _narrow_made(program, feeds, monkeypatch)
    plans = interpreter.plan(program)
    made = {plan.outputs[0]: plan.op.__name__ for plan in plans if plan.outputs}
    readers = {}
    for plan in plans:
        for name in plan.inputs:
            readers.setdefault(name, []).append(plan.op.__name__)
    # the squeeze's output (the expands read it) and the fire's Concat (the MaxPool), the expands' computed into it;
    # not the stem's (a program output), the residual Conv's (the Add reads it), the pool's (the Conv and the Add), the
    # exposed one (Flatten) or the Dense layer's
    assert sorted(made[name] for name in chosen) == ["Concat", "Conv"]
    assert [readers[name] for name in sorted(chosen, key=made.get)] == [["MaxPool"], ["Conv", "Conv"]]
    assert all(set(readers[name]) <= {"Conv", "MaxPool", "GlobalAveragePool", "Concat"} for name in chosen)
    assert not chosen & {info.name for info in program.outputs}
    assert (np.int16, np.int16) in read  # (an expand reads the squeeze's output narrow, into the Concat's slice)


@pytest.mark.parametrize("scale", [1.0, 60.0, -60.0])  # (large inputs saturate the activations: int16's edge)
def test_narrow_replays_give_the_reference_bits(program, scale, monkeypatch):
    feeds = _feeds(program, 3, 3, scale)
    chosen, _, fast = _narrow_made(program, feeds, monkeypatch)
    assert chosen
    reference = InferenceSession(program, path="reference").run_fixed(feeds)
    assert fast.commitment == reference.commitment
    integers = integer_feeds(program, feeds)
    metered, replayed = interpreter.execute(program, integers, replay=False), interpreter.execute(program, integers)
    assert all(np.array_equal(metered[name], replayed[name]) for name in metered)


@pytest.mark.parametrize("shift", [0, 1, 7, 9])
@pytest.mark.parametrize("proven", [0, 16])
def test_an_int16_operand_enters_an_8_bit_product_as_its_int64_values_do(shift, proven):
    """The 8-bit narrowing of a run-time operand (its fast pass, a bound kernel's `entering`, the reference's) reads
    int16 as it reads int64."""
    from verifier.ops._operands import entering, narrowed

    x = edge_values(np.random.default_rng(shift), (3, 50), Q15)
    attrs = {"operand_bits": 8, "x_shift": shift}
    for path in ("fast", "reference"):
        wide, narrow = (narrowed(v, attrs, "x_shift", path, proven) for v in (x, x.astype(np.int16)))
        assert np.array_equal(wide[0], narrow[0]) and wide[1:] == narrow[1:]
    take = entering(attrs, "x_shift", proven)
    assert np.array_equal(take(x.astype(np.int16)), take(x))
