"""interpreter.py: a Concat's inputs made by Conv are computed straight into their slices of its output, once a run
with the same feed shapes has laid it out. Memory placement only: every node's bytes equal a fresh program's on
the reference path, for feed shapes seen before or not, and only inputs that the Concat alone reads are placed."""

import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from verifier import InferenceSession, Program, compile_model, interpreter
from verifier.kernels.convolution import bind_conv
from verifier.ops import conv as conv_op
from verifier.ops.concat import Concat
from verifier.ops.conv import Conv


class Fire(nn.Module):
    """SqueezeNet's module (squeeze, then 1x1 and 3x3 expands joined), a pooled branch joined with a Conv, a Conv
    output that a Concat shares with another reader, and one that is also a model output."""

    def __init__(self):
        super().__init__()
        self.squeeze = nn.Conv2d(3, 4, 1)
        self.expand1, self.expand3 = nn.Conv2d(4, 6, 1), nn.Conv2d(4, 5, 3, padding=1)
        self.branch, self.shared, self.exposed = nn.Conv2d(11, 3, 3, padding=1), nn.Conv2d(14, 2, 1), nn.Conv2d(14, 2, 1)

    def forward(self, x):
        s = torch.relu(self.squeeze(x))
        fire = torch.cat([torch.relu(self.expand1(s)), torch.relu(self.expand3(s))], 1)
        pooled = torch.cat([nn.functional.max_pool2d(fire, 3, 1, 1), self.branch(fire)], 1)
        shared, exposed = self.shared(pooled), self.exposed(pooled)
        head = torch.cat([shared, shared * 0.5, exposed], 1)
        return head.mean(dim=(2, 3)), exposed


@pytest.fixture(scope="module")
def fire():
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(Fire().eval(), (torch.randn(1, 3, 7, 6),), buffer, input_names=["x"], output_names=["y", "e"],
                      opset_version=17, dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    calibration = np.random.default_rng(1).standard_normal((32, 3, 7, 6)).astype(np.float32)
    return compile_model(model, calibration={"x": calibration})


def test_only_conv_outputs_that_the_concat_alone_reads_are_placed(fire):
    plans = interpreter.plan(fire)
    joins = [i for i, plan in enumerate(plans) if plan.op is Concat]
    assert len(joins) == 3 and [plans[i].gathers for i in joins] == [True, True, False]
    placed = {plan.into: plan.op for plan in plans if plan.into is not None}
    assert placed == {(joins[0], 0): Conv, (joins[0], 1): Conv, (joins[1], 1): Conv}  # (not the pool, shared, exposed)


def test_placed_runs_give_every_node_the_reference_bytes(fire, monkeypatch):
    joined, placed = [], []
    concat_run, conv_run = Concat.run, Conv.run

    def counting_concat(inputs, attrs, consts):
        joined.append(len(inputs))
        return concat_run(inputs, attrs, consts)

    def watching_conv(inputs, attrs, consts, out=None, **hints):
        outputs = conv_run(inputs, attrs, consts, out=out, **hints)
        if out is not None:
            placed.append(outputs[0] is out)
        return outputs

    def watching_bind(*arguments, **keywords):  # (a replay's Conv: its bound function, given the slot)
        kernel = bind_conv(*arguments, **keywords)

        def watched(x, out=None):
            result = kernel(x, out)
            if out is not None and out.base is not None:  # (a slot: not the new array of a narrow result)
                placed.append(result is out)
            return result

        watched.result_shape = kernel.result_shape
        return watched

    monkeypatch.setattr(Concat, "run", staticmethod(counting_concat))
    monkeypatch.setattr(Conv, "run", staticmethod(watching_conv))
    monkeypatch.setattr(conv_op, "bind_conv", watching_bind)
    session = InferenceSession(fire)
    images = np.random.default_rng(2).standard_normal((8, 3, 7, 6)).astype(np.float32)
    seen = set()
    for batch, start in ((1, 0), (3, 1), (1, 4), (3, 5), (2, 0)):
        feeds = {"x": images[start:start + batch]}
        fresh = InferenceSession(Program.from_bytes(fire.to_bytes()), path="reference")
        trace, commitment = fresh.run_trace(feeds), fresh.run_fixed(feeds).commitment
        joined.clear(), placed.clear()
        assert session.run_trace(feeds) == trace and session.run_fixed(feeds).commitment == commitment
        if batch in seen:  # laid out before: both expands and the branch conv computed in place, no plain Concat
            assert joined == [3, 3] and placed == [True] * 6  # (the third Concat, unplaced, runs plainly: 3 inputs)
        else:  # the first run with these shapes lays the Concats out; the second places
            assert joined == [2, 2, 3, 3] and placed == [True] * 3
        seen.add(batch)


def test_inputs_of_other_shapes_than_the_layout_take_the_plain_concat(fire):
    """Shapes that follow from values could differ between runs with the same feed shapes: a node whose slot does
    not fit computes a new array, and the Concat joins what it gets, then lays itself out again."""
    session = InferenceSession(fire)
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3, 7, 6)).astype(np.float32)}
    expected = InferenceSession(Program.from_bytes(fire.to_bytes()), path="reference").run_fixed(feeds)
    assert session.run_fixed(feeds).commitment == expected.commitment
    layouts = interpreter._shape_values(fire, feeds).layouts  # (what the runs with these feed shapes share)
    first = min(layouts)
    shape, (one, other) = layouts[first].shape, (part[1] for part in layouts[first].slices)
    assert (one.stop - one.start, other.stop - other.start) == (6, 5)
    swapped = (slice(0, 5), slice(5, 11))  # (the same total: every slot the wrong size)
    layouts[first] = interpreter._Layout(shape, tuple((slice(None), part) for part in swapped))
    result = session.run_fixed(feeds)
    assert result.commitment == expected.commitment
    assert all(np.array_equal(result.outputs[name], expected.outputs[name]) for name in expected.outputs)
    assert [part[1] for part in layouts[first].slices] == [slice(0, 6), slice(6, 11)]
