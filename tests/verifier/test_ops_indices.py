"""Index, shape and rounding ops against onnxruntime: exact (0 steps) wherever values only move or the result
is an integer of the inputs (Range, Mod, DepthToSpace/SpaceToDepth, GatherElements, OneHot, ScatterND,
ScatterElements, NonZero, Floor/Ceil/Round), one rounding (0.5 step) where a sum is requantized (Range's
and Mod's outputs at their calibrated scale, ScatterND with reduction add); values metered from their data
(Range, OneHot, NonZero) are refused past the limits before anything is allocated."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from test_ops_coverage import assert_exact, assert_within, compare, graph_model, rand
from verifier import InferenceSession, compile_model
from verifier.errors import CostLimitError, ProgramRunError
from verifier_helpers import ort_run


def run_ours(model, feeds):
    return InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)


@pytest.mark.parametrize("start,limit,delta", [(0, 7, 1), (10, -3, -4), (5, 5, 1), (-2, 9, 3)])
def test_range_of_integers_is_exact(start, limit, delta):
    feeds = {"limit": np.array(limit, np.int64)}
    node = helper.make_node("Range", ["start", "limit", "delta"], ["y"])
    model = graph_model([node], feeds, {"start": np.array(start, np.int64), "delta": np.array(delta, np.int64)})
    assert_exact(model, feeds)


def test_range_of_floats_from_a_run_time_length_rounds_once():
    """torch.arange(T, dtype=float) with T from the input's shape, as rotary embeddings compute positions."""
    feeds = {"x": rand(9, 2)}
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["length"], axis=0),
             helper.make_node("Cast", ["length"], ["limit"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["start", "limit", "delta"], ["y"])]
    model = graph_model(nodes, feeds, {"zero": np.array(0, np.int64), "start": np.array(0.5, np.float32),
                                       "delta": np.array(0.75, np.float32)}, dynamic_batch=True)
    assert_within(model, feeds, 0.5)
    longer = {"x": rand(14, 2)}
    assert np.array_equal(run_ours(model, longer)[0], ort_run(model, longer)[0])  # 0.5 + 0.75 i: on the grid


def test_range_past_the_element_limit_is_refused_before_allocating():
    calibration = {"limit": np.array(4, np.int64)}
    node = helper.make_node("Range", ["start", "limit", "delta"], ["y"])
    model = graph_model([node], calibration, {"start": np.array(0, np.int64), "delta": np.array(1, np.int64)})
    session = InferenceSession(compile_model(model, calibration=calibration))
    with pytest.raises(CostLimitError, match="Range.*1099511627776 elements"):
        session.run(None, {"limit": np.array(2**40, np.int64)})


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_of_integers_follows_the_sign_rule(fmod):
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(-50, 50, (4, 6)).astype(np.int64), "b": rng.choice([-7, -3, 2, 5], (4, 6)).astype(np.int64)}
    assert_exact(graph_model([helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod)], feeds), feeds)


def test_fmod_of_fixed_point_tensors_rounds_once():
    feeds = {"a": rand(4, 6, scale=5.0), "b": np.abs(rand(4, 6, seed=1)) + 0.5}
    assert_within(graph_model([helper.make_node("Mod", ["a", "b"], ["y"], fmod=1)], feeds), feeds, 0.5)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_space_to_depth_are_exact(mode):
    feeds = {"x": rand(2, 8, 3, 4)}
    assert_exact(graph_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)], feeds), feeds)
    feeds = {"x": rand(2, 3, 4, 6)}
    assert_exact(graph_model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], feeds), feeds)


def test_space_to_depth_crd_inverts_depth_to_space_crd():
    """(SpaceToDepth's mode is opset 25, past onnxruntime 1.32: checked as the inverse of DepthToSpace.)"""
    from verifier.ops.depthtospace import DepthToSpace
    from verifier.ops.spacetodepth import SpaceToDepth

    x = np.arange(2 * 3 * 4 * 6, dtype=np.int64).reshape(2, 3, 4, 6)
    packed = SpaceToDepth.run([x], {"block": 2, "crd": 1}, {})[0]
    assert packed.shape == (2, 12, 2, 3)
    assert np.array_equal(DepthToSpace.run([packed], {"block": 2, "crd": 1}, {})[0], x)
    assert not np.array_equal(DepthToSpace.run([packed], {"block": 2, "crd": 0}, {})[0], x)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_with_negative_indices_is_exact(axis):
    feeds = {"x": rand(3, 4, 5), "i": np.random.default_rng(0).integers(-3, 3, (3, 4, 5)).astype(np.int64)}
    assert_exact(graph_model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)], feeds), feeds)


def test_gather_elements_outside_the_axis_is_a_clear_error():
    feeds = {"x": rand(3, 4), "i": np.zeros((3, 4), np.int64)}
    model = graph_model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)], feeds)
    with pytest.raises(ProgramRunError, match="GatherElements index outside"):
        run_ours(model, {"x": rand(3, 4), "i": np.full((3, 4), 4, np.int64)})


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_with_negative_and_outside_indices_is_exact(axis):
    feeds = {"i": np.array([[0, 3, -1], [7, -5, 2]], np.int64)}
    node = helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=axis)
    model = graph_model([node], feeds, {"depth": np.array(5, np.int64), "values": np.array([-0.5, 2.0], np.float32)})
    assert_exact(model, feeds)


@pytest.mark.parametrize("reduction", ["none", "add", "max", "min"])
def test_scatter_nd_rounds_at_most_once(reduction):
    feeds = {"x": rand(4, 5, 3), "u": rand(3, 5, 3, seed=1)}
    node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)
    indices = np.array([[1], [3], [1]], np.int64) if reduction != "none" else np.array([[1], [3], [0]], np.int64)
    model = graph_model([node], feeds, {"i": indices}, opset=18)
    assert_within(model, feeds, 0.5)  # (data and updates at different scales: the finer one is rounded once)


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements_rounds_at_most_once(reduction, axis):
    feeds = {"x": rand(4, 5), "u": rand(2, 3, seed=1)}
    indices = np.array([[1, 3, 0], [2, 0, 1]], np.int64) if reduction == "none" else np.array([[1, 1, 0], [-1, 0, 1]], np.int64)
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis, reduction=reduction)
    assert_within(graph_model([node], feeds, {"i": indices}, opset=18), feeds, 0.5)


def test_nonzero_of_a_fixed_point_tensor_is_exact():
    feeds = {"x": np.where(rand(3, 4) > 0.5, rand(3, 4, seed=2), 0).astype(np.float32)}
    assert_exact(graph_model([helper.make_node("NonZero", ["x"], ["y"])], feeds), feeds)


@pytest.mark.parametrize("op", ["Floor", "Ceil", "Round"])
def test_rounding_ops_are_exact_including_ties(op):
    feeds = {"x": np.concatenate([rand(40), np.array([2.5, -2.5, 1.5, -0.5, 0.5, 3.0, -3.0], np.float32)])}
    assert_exact(graph_model([helper.make_node(op, ["x"], ["y"])], feeds), feeds)


@pytest.mark.parametrize("attrs", [{"axis": 1}, {"axis": 0, "keepdims": 0}, {"axis": -1, "select_last_index": 1}])
def test_argmin_including_ties_is_exact(attrs):
    feeds = {"x": np.round(rand(3, 5, 4)).astype(np.float32)}  # (whole numbers: ties)
    assert_exact(graph_model([helper.make_node("ArgMin", ["x"], ["y"], **attrs)], feeds), feeds)


@pytest.mark.parametrize("opset,axis", [(13, -1), (13, 1), (11, 1)])
def test_hardmax_marks_the_first_maximum_exactly(opset, axis):
    feeds = {"x": np.round(rand(3, 4, 5)).astype(np.float32)}
    assert_exact(graph_model([helper.make_node("Hardmax", ["x"], ["y"], axis=axis)], feeds, opset=opset), feeds)


def test_size_of_a_dynamic_tensor_is_exact():
    feeds = {"x": rand(3, 4)}
    model = graph_model([helper.make_node("Size", ["x"], ["y"])], feeds, dynamic_batch=True)
    assert run_ours(model, {"x": rand(7, 4)})[0] == 28


@pytest.mark.parametrize("batch_dims,indices", [(0, [[0, 1], [2, -1]]), (0, [[1], [0]]), (1, [[1], [0], [2]])])
def test_gather_nd_is_exact(batch_dims, indices):
    feeds = {"x": rand(3, 3, 4)}
    model = graph_model([helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)], feeds,
                        {"i": np.array(indices, np.int64)}, opset=13)
    assert_exact(model, feeds)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("iou,score", [(0.5, 0.3), (0.25, None), (0.7, 0.0)])
def test_non_max_suppression_selects_what_onnxruntime_selects(center, iou, score):
    rng = np.random.default_rng(int(iou * 10) + center)
    corners = rng.uniform(0, 10, (2, 40, 2))
    sizes = rng.uniform(0.5, 4, (2, 40, 2))
    if center:
        boxes = np.concatenate([corners, sizes], -1)
    else:
        boxes = np.concatenate([corners, corners + sizes], -1)[..., [1, 0, 3, 2]]
        boxes[0, :5] = boxes[0, :5, [2, 3, 0, 1]].T  # (flipped corners)
    scores = np.round(rng.uniform(0, 1, (2, 3, 40)), 2).astype(np.float32)  # (ties: the lower index first)
    feeds = {"boxes": boxes.astype(np.float32), "scores": scores}
    initializers = {"limit": np.array(7, np.int64), "iou": np.array(iou, np.float32)}
    names = ["boxes", "scores", "limit", "iou"]
    if score is not None:
        initializers["score"] = np.array(score, np.float32)
        names.append("score")
    model = graph_model([helper.make_node("NonMaxSuppression", names, ["y"], center_point_box=center)], feeds,
                        initializers, opset=11)
    assert_exact(model, feeds)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_ops_of_signed_and_unsigned_integers_are_exact(op):
    rng = np.random.default_rng(0)
    for dtype in (np.int8, np.uint8, np.int64):
        info = np.iinfo(dtype)
        feeds = {"a": rng.integers(max(info.min, -1000), min(info.max, 1000), (3, 5)).astype(dtype),
                 "b": rng.integers(max(info.min, -1000), min(info.max, 1000), (5,)).astype(dtype)}
        model = graph_model([helper.make_node(op, ["a", "b"], ["y"])], feeds, opset=18)
        assert np.array_equal(run_ours(model, feeds)[0], ort_run(model, feeds)[0].astype(np.int64))


@pytest.mark.parametrize("k,dtype", [(0, None), (1, TensorProto.FLOAT), (-2, TensorProto.INT64)])
def test_eye_like_is_exact(k, dtype):
    feeds = {"x": rand(4, 6)}
    node = helper.make_node("EyeLike", ["x"], ["y"], k=k, **({"dtype": dtype} if dtype is not None else {}))
    assert_exact(graph_model([node], feeds, opset=9), feeds)


@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0)])
def test_reduce_prod_of_fixed_point_values_rounds_per_factor(axes, keepdims):
    feeds = {"x": (np.random.default_rng(0).uniform(0.5, 1.5, (3, 4, 2)) * np.sign(rand(3, 4, 2))).astype(np.float32)}
    model = graph_model([helper.make_node("ReduceProd", ["x"], ["y"], axes=axes, keepdims=keepdims)], feeds, opset=13)
    program = compile_model(model, calibration=feeds)
    # each multiply rounds once at the input's frac; the factors after it (|q| <= 1.5) carry that error on
    factors = np.prod([feeds["x"].shape[a] for a in axes])
    bound = 0.5 * 2.0 ** (program.outputs[0].frac - program.inputs[0].frac) * factors * 1.5**factors + 0.5
    ours, reference, frac = compare(model, feeds)[0]
    assert np.max(np.abs(ours - reference)) * 2.0**frac <= bound
