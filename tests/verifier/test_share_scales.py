"""Concat inputs produced at the Concat's scale (verifier/compiler/share_scales.py): a branch with a small
range is rounded once, straight to the joined scale, instead of at its own finer scale and again in the
Concat. A tensor that something else also reads keeps its own scale."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run

RNG = np.random.default_rng(11)
CALIBRATION = {"x": RNG.uniform(-1, 1, (16, 4, 6, 6)).astype(np.float32)}


def fire_module(extra_reader: bool):
    """x -> Conv(small weights) -> Relu -> Concat <- MaxPool <- Relu <- Conv(large weights) <- x; with
    `extra_reader` the small branch's Relu output is also a graph output (a second reader)."""
    small = numpy_helper.from_array((RNG.normal(0, 0.01, (3, 4, 1, 1))).astype(np.float32), "w_small")
    large = numpy_helper.from_array((RNG.normal(0, 3.0, (5, 4, 3, 3))).astype(np.float32), "w_large")
    nodes = [
        helper.make_node("Conv", ["x", "w_small"], ["a"], name="conv_small"),
        helper.make_node("Relu", ["a"], ["a_relu"], name="relu_small"),
        helper.make_node("Conv", ["x", "w_large"], ["b"], name="conv_large", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["b_relu"], name="relu_large"),
        helper.make_node("MaxPool", ["b_relu"], ["b_pool"], name="pool", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["a_relu", "b_pool"], ["y"], name="join", axis=1),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 6, 6])]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("a_relu", TensorProto.FLOAT, [None, 3, 6, 6]))
    graph = helper.make_graph(nodes, "fire", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 6, 6])],
                              outputs, [small, large])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def concat_node(program):
    return next(node for node in program.nodes if node.op == "Concat")


def test_concat_inputs_are_produced_at_the_concat_scale_and_joined_without_rounding():
    model = fire_module(extra_reader=False)
    program = compile_model(model, calibration=CALIBRATION)
    join = concat_node(program)
    assert len(set(join.attrs["fracs"])) == 1 and join.attrs["out_frac"] == join.attrs["fracs"][0]
    small = next(node for node in program.nodes if node.name == "conv_small")
    assert small.attrs["out_frac"] == join.attrs["out_frac"]  # the Conv rounds straight to the joined scale
    x = {"x": RNG.uniform(-1, 1, (3, 4, 6, 6)).astype(np.float32)}
    fixed, reference = InferenceSession(program).run(None, x)[0], ort_run(model, x)[0]
    step = 2.0 ** -join.attrs["out_frac"]
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference))
    # the small branch is one rounding (half a step) plus its conv's own error away from float
    assert np.max(np.abs(fixed[:, :3] - reference[:, :3])) <= step


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_a_tensor_with_another_reader_keeps_its_own_scale(path):
    model = fire_module(extra_reader=True)
    program = compile_model(model, calibration=CALIBRATION)
    join = concat_node(program)
    assert join.attrs["fracs"][0] > join.attrs["fracs"][1]  # the small branch is finer; the Concat rounds it
    x = {"x": RNG.uniform(-1, 1, (2, 4, 6, 6)).astype(np.float32)}
    y, a_relu = InferenceSession(program, path=path).run(None, x)
    _, a_reference = ort_run(model, x)
    assert np.max(np.abs(a_relu - a_reference)) <= 2.0 ** -join.attrs["fracs"][0] * 4


def test_a_relu_branch_and_a_joined_join_share_the_scale_of_the_widest_tensor_on_their_paths():
    """A fused Conv + Relu picks its frac from the Conv's range, which the Relu can narrow well below the others':
    the Concat's scale comes from the widest range on each input's path. A Concat's output keeps its inputs' frac,
    so a Concat that joins it with another branch takes that scale too."""
    weight = numpy_helper.from_array(RNG.normal(0, 3.0, (3, 4, 1, 1)).astype(np.float32), "w_wide")
    mostly_negative = numpy_helper.from_array(np.full(3, -6.0, dtype=np.float32), "b_wide")
    small = numpy_helper.from_array(RNG.normal(0, 0.05, (2, 4, 1, 1)).astype(np.float32), "w_small")
    side = numpy_helper.from_array(RNG.normal(0, 0.05, (4, 4, 3, 3)).astype(np.float32), "w_side")
    nodes = [
        helper.make_node("Conv", ["x", "w_wide", "b_wide"], ["a"], name="conv_wide"),
        helper.make_node("Relu", ["a"], ["a_relu"]),
        helper.make_node("Conv", ["x", "w_small"], ["b"], name="conv_small"),
        helper.make_node("Relu", ["b"], ["b_relu"]),
        helper.make_node("Concat", ["a_relu", "b_relu"], ["fire"], name="join", axis=1),
        helper.make_node("MaxPool", ["fire"], ["pooled"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w_side"], ["c"], name="conv_side", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["pooled", "c"], ["y"], name="join_again", axis=1),
    ]
    graph = helper.make_graph(nodes, "joins", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 9, 6, 6])],
                              [weight, mostly_negative, small, side])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    program = compile_model(model, calibration=CALIBRATION)
    joins = [node for node in program.nodes if node.op == "Concat"]
    convs = {node.name: node.attrs["out_frac"] for node in program.nodes if node.op == "Conv"}
    assert [len(set(join.attrs["fracs"])) for join in joins] == [1, 1]
    assert convs["conv_wide"] == convs["conv_small"] == convs["conv_side"] == joins[1].attrs["out_frac"]
    x = {"x": RNG.uniform(-1, 1, (3, 4, 6, 6)).astype(np.float32)}
    fixed, reference = InferenceSession(program).run(None, x)[0], ort_run(model, x)[0]
    assert np.max(np.abs(fixed - reference)) <= 0.01 * np.max(np.abs(reference))
