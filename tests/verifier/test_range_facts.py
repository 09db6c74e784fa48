"""interpreter._plan_ranges: a GEMM/conv operand that is a validated fixed-point feed, or is made by a saturating op
(a Conv, Gemm, Add, BatchNormalization..., or a Relu, MaxPool, average or reshape of such), is proven within the
activation range, so the fast path does not check it again; the reference path checks every fact it is given."""

import dataclasses
import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from verifier import InferenceSession, Program, compile_model, interpreter
from verifier.fixedpoint import ACT_BITS
from verifier.ops import _operands
from verifier.ops.conv import Conv


class Blocks(nn.Module):
    """A stem on the feed, then every kind of maker a product operand can have here: a pooled conv, a residual
    sum, a batch norm torch keeps (it follows a pool, so it cannot fold), an average pool, a flatten."""

    def __init__(self):
        super().__init__()
        self.stem, self.body = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.norm, self.tail = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x):
        s = nn.functional.max_pool2d(torch.relu(self.stem(x)), 2)
        s = torch.relu(self.body(s) + s)
        s = self.tail(self.norm(nn.functional.avg_pool2d(s, 1)))
        return self.head(torch.flatten(nn.functional.avg_pool2d(s, 2), 1))


def _compiled(model: nn.Module, matmul_bits: int = 16) -> Program:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 12, 12),), buffer, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    calibration = np.random.default_rng(1).standard_normal((16, 3, 12, 12)).astype(np.float32)
    return compile_model(onnx.load_from_string(buffer.getvalue()), calibration={"x": calibration},
                         matmul_bits=matmul_bits)


@pytest.fixture(scope="module")
def program():
    torch.manual_seed(0)
    model = Blocks()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-0.5, 0.5), model.norm.running_var.uniform_(0.5, 2.0)
    return _compiled(model)


def _products(program: Program) -> list:
    return [node for node in interpreter.plan(program) if getattr(node.op, "takes_proven_ranges", False)]


def test_every_operand_is_proven_from_the_feed_or_its_maker(program):
    products = _products(program)
    assert [node.op.__name__ for node in products] == ["Conv", "Conv", "Conv", "Gemm"]
    assert all(node.hints["proven"][0] == ACT_BITS for node in products)  # (the stem reads the validated feed)
    kinds = {node.op.__name__ for node in interpreter.plan(program)}
    assert {"Add", "BatchNormalization", "AveragePool", "Flatten"} <= kinds  # (the makers the facts went through)


def test_the_fast_path_checks_no_proven_operand_and_gives_the_reference_bits(program, monkeypatch):
    checked = []
    original = _operands.checked_range
    monkeypatch.setattr(_operands, "checked_range", lambda x, value_range=None: checked.append(x.shape) or
                        original(x, value_range))
    x = np.random.default_rng(2).uniform(-3, 3, (2, 3, 12, 12)).astype(np.float32)
    fast = InferenceSession(program).run_fixed({"x": x})
    assert checked == []
    fresh = Program.from_bytes(program.to_bytes())
    fresh.inputs[0] = dataclasses.replace(fresh.inputs[0], frac=None)  # (not a fixed-point feed: nothing proven)
    interpreter.plan(fresh)
    assert [bool(node.hints) for node in _products(fresh)] == [False, True, True, True]
    checked.clear()
    reference = InferenceSession(program, path="reference").run_fixed({"x": x})
    assert len(checked) == len(_products(program))
    assert fast.commitment == reference.commitment


def test_an_8_bit_program_proves_operands_made_at_8_bits():
    torch.manual_seed(1)
    chain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    program = _compiled(chain, matmul_bits=8)
    assert [node.hints.get("proven", (0,))[0] for node in _products(program)] == [ACT_BITS, 8, 8]
    x = np.random.default_rng(3).standard_normal((1, 3, 12, 12)).astype(np.float32)
    fast = InferenceSession(program).run_fixed({"x": x})
    assert fast.commitment == InferenceSession(program, path="reference").run_fixed({"x": x}).commitment


def test_the_reference_path_refuses_a_false_fact(program, monkeypatch):
    monkeypatch.setattr(Conv, "range_bits", staticmethod(lambda attrs, inputs: 2))  # (|y| <= 1: false)
    program = Program.from_bytes(program.to_bytes())  # (plans are made once per program object)
    x = np.random.default_rng(4).uniform(-3, 3, (1, 3, 12, 12)).astype(np.float32)
    InferenceSession(program).run_fixed({"x": x})  # (the fast path trusts it)
    with pytest.raises(AssertionError, match="range facts"):
        InferenceSession(program, path="reference").run_fixed({"x": x})


@pytest.mark.parametrize("rule_gives", [0, -3, ACT_BITS + 1, 40, 2.0, "16", None, True, np.int64(16), KeyError])
def test_widths_outside_1_to_16_and_rules_that_fail_prove_nothing(program, monkeypatch, rule_gives):
    def rule(attrs, inputs):
        if rule_gives is KeyError:
            return attrs["no such attribute"]  # (a rule the attributes break gives no fact, not an error)
        return rule_gives

    monkeypatch.setattr(Conv, "range_bits", staticmethod(rule))
    fresh = Program.from_bytes(program.to_bytes())
    # the stem reads the feed; the body conv reads a pool of the stem's output, the Gemm a pool of the tail's:
    # nothing proven; the tail reads the batch norm's output, proven by that op's own rule
    assert [bool(node.hints) for node in _products(fresh)] == [True, False, True, False]


class Attention(nn.Module):
    """The transformer's makers of product operands: LayerNormalization, a scaling Mul, Softmax, a row Gather and a
    mean over the sequence (ReduceMean)."""

    def __init__(self):
        super().__init__()
        self.norm, self.q, self.k = nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.first, self.pooled = nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        h = self.norm(x)
        scores = torch.softmax((self.q(h) * 0.5) @ self.k(h).transpose(1, 2), dim=-1)
        y = scores @ h
        return self.first(y[:, 0]), self.pooled(y.mean(dim=1))


def test_a_transformer_block_proves_every_product_operand_and_the_reference_path_agrees():
    torch.manual_seed(2)
    buffer = io.BytesIO()
    torch.onnx.export(Attention().eval(), (torch.randn(2, 4, 8),), buffer, input_names=["x"],
                      output_names=["first", "pooled"], opset_version=17, dynamic_axes={"x": {0: "batch"}},
                      dynamo=False)
    calibration = np.random.default_rng(5).standard_normal((16, 4, 8)).astype(np.float32)
    program = compile_model(onnx.load_from_string(buffer.getvalue()), calibration={"x": calibration})
    plans = interpreter.plan(program)
    kinds = {node.op.__name__ for node in plans}
    assert {"LayerNormalization", "Mul", "Softmax", "Gather", "ReduceMean"} <= kinds
    for node in _products(program):
        runtime = [i for i, name in enumerate(node.inputs[:2]) if name and name not in program.constants]
        assert runtime and all(node.hints["proven"][i] == ACT_BITS for i in runtime), node.name
    x = np.random.default_rng(6).standard_normal((3, 4, 8)).astype(np.float32)
    fast = InferenceSession(program).run_trace({"x": x})
    assert fast == InferenceSession(program, path="reference").run_trace({"x": x})
