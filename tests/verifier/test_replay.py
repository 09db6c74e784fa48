"""Replays (verifier/interpreter.py): a run with feed shapes a completed run has seen runs its nodes unmetered, through
the functions their ops bound to those shapes (Gemm/MatMul/Conv `bind`, kernels bind_gemm / bind_product /
bind_conv). It gives the same bits, charges the same units and stops with the same error at the same node as the
metered loop, and hands the run back to it when shapes follow from values."""

import math

import numpy as np
import pytest
from test_kernels_conv import (CASES, WINOGRAD_CASES, edge_values, winograd_for_small_shapes,  # noqa: F401 (fixtures)
                               winograd_variant)

from verifier import InferenceSession, Program, interpreter
from verifier.errors import CostLimitError, ProgramRunError
from verifier.feeds import integer_feeds
from verifier.fixedpoint import INT64_SAFE, qmax
from verifier.interpreter import execute
from verifier.kernels import conv, gemm, limbs, plan_conv, prepare
from verifier.kernels.convolution import bind_conv
from verifier.kernels.epilogue import Requantize
from verifier.kernels.exact_gemm import bind_gemm, bind_product
from verifier.program import ProgramNode, TensorInfo

Q15 = qmax(16)


@pytest.fixture(params=["off", "always"])
def limb_setting(request, monkeypatch):
    """Each setting of the limb path: bound kernels still ask it at each call where it may take the product."""
    monkeypatch.setenv(limbs.ENVIRONMENT, request.param)
    return request.param


def _epilogue(rng, channels, relu):
    return Requantize(int(rng.integers(8, 20)), 16, relu, rng.integers(-(1 << 30), 1 << 30, channels))


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{case[1]}")
@pytest.mark.parametrize("relu", [False, True])
def test_a_bound_convolution_equals_conv(case, relu, limb_setting):
    x_shape, w_shape, strides, pads, dilations, group = case
    rng = np.random.default_rng(len(x_shape) * 100 + w_shape[0])
    w = prepare(edge_values(rng, w_shape, Q15 // 64))
    spec = _epilogue(rng, w_shape[0], relu)
    geometry = {"strides": strides, "pads": pads, "dilations": dilations, "group": group}
    bound = bind_conv(x_shape, w, strides, pads, dilations, group, Q15, spec)
    if bound is None:  # (only a 3-D depthwise convolution has no fused kernel: conv finishes its products after)
        assert len(x_shape) == 5 and w_shape[1] == 1 and group > 1
        return
    for _ in range(2):
        x = edge_values(rng, x_shape, Q15)
        assert np.array_equal(bound(x), conv(x, w, x_bound=Q15, requantize=spec, path="reference", **geometry))


@pytest.mark.parametrize("case", WINOGRAD_CASES[:2], ids=lambda case: f"{case[0]}-{case[1]}")
def test_a_bound_winograd_convolution_equals_conv(case, winograd_variant):
    x_shape, w_shape, pads = case
    rng = np.random.default_rng(7)
    w = prepare(edge_values(rng, w_shape, Q15))
    spec = _epilogue(rng, w_shape[0], True)
    bound = bind_conv(x_shape, w, (1, 1), pads, (1, 1), 1, Q15, spec)
    plan = plan_conv(x_shape, w_shape, 1, Q15, w.bound, strides=(1, 1), pads=pads, dilations=(1, 1))
    assert plan.algorithm == winograd_variant
    x = edge_values(rng, x_shape, Q15)
    assert np.array_equal(bound(x), conv(x, w, pads=pads, x_bound=Q15, requantize=spec, path="reference"))


@pytest.mark.parametrize("pool", [
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1], "dilations": [1, 1], "ceil_mode": 0},
    {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 1, 1], "dilations": [2, 1], "ceil_mode": 1},
])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_bound_convolution_with_its_max_pool_equals_conv(batch, pool, limb_setting, small_products):
    """Pooled by the kernel (the direct loop, or the fused float product), or after it (the limb path)."""
    rng = np.random.default_rng(batch)
    w = prepare(edge_values(rng, (8, 4, 3, 3), Q15 // 8))
    spec = _epilogue(rng, 8, batch == 1)
    x_shape = (batch, 4, 9, 8)
    bound = bind_conv(x_shape, w, (1, 1), (1, 1, 1, 1), (1, 1), 1, Q15, spec, pool)
    x = edge_values(rng, x_shape, Q15)
    expected = conv(x, w, pads=(1, 1, 1, 1), x_bound=Q15, requantize=spec, pool=pool, path="reference")
    assert np.array_equal(bound(x), expected)


@pytest.mark.parametrize("a_shape,n", [((1, 64), 32), ((16, 1, 64), 192), ((5, 7, 200), 9), ((300, 48), 40)])
@pytest.mark.parametrize("relu", [False, True])
def test_a_bound_gemm_equals_gemm(a_shape, n, relu, limb_setting):
    rng = np.random.default_rng(a_shape[-1] + n)
    b = prepare(edge_values(rng, (a_shape[-1], n), Q15))
    spec = _epilogue(rng, n, relu)
    bound = bind_gemm(a_shape, b, Q15, spec)
    assert bound is not None
    for _ in range(2):
        a = edge_values(rng, a_shape, Q15)
        assert np.array_equal(bound(a), gemm(a, b, a_bound=Q15, requantize=spec, path="reference"))


def test_a_bound_gemm_in_float32_equals_gemm():
    """8-bit operands: the float32 product, its bias added in float64 as it is finished."""
    rng = np.random.default_rng(1)
    b = prepare(edge_values(rng, (96, 24), 127))
    spec = _epilogue(rng, 24, False)
    bound = bind_gemm((10, 96), b, 127, spec)
    a = edge_values(rng, (10, 96), 127)
    assert np.array_equal(bound(a), gemm(a, b, a_bound=127, requantize=spec, path="reference"))


@pytest.mark.parametrize("a_shape,b_shape", [((2, 4, 16, 8), (2, 4, 8, 16)), ((4, 16, 8), (8, 5)), ((3, 5), (5, 6))])
def test_a_bound_product_of_two_runtime_operands_equals_gemm(a_shape, b_shape):
    rng = np.random.default_rng(2)
    spec = Requantize(15, 16, False)
    bound = bind_product(a_shape, b_shape, Q15, Q15, spec)
    a, b = edge_values(rng, a_shape, Q15), edge_values(rng, b_shape, Q15)
    assert np.array_equal(bound(a, b), gemm(a, b, a_bound=Q15, b_bound=Q15, requantize=spec, path="reference"))


@pytest.mark.parametrize("bound_bits", [8, 16])  # (float32 and float64 products)
@pytest.mark.parametrize("shift,relu", [(-1, False), (-2, True), (-9, False)])
def test_a_product_whose_epilogue_shifts_left_is_scaled_and_saturated(bound_bits, shift, relu):
    """8-bit attention's A V: the output finer than the product (a left shift, no rounding), bound and unbound, the
    integers of the reference epilogue, saturation included (9 bits left: most values saturate)."""
    rng = np.random.default_rng(bound_bits - shift)
    bound = qmax(bound_bits)
    spec = Requantize(shift, 16, relu)
    a, b = edge_values(rng, (2, 4, 16, 8), bound), edge_values(rng, (2, 4, 8, 16), bound)
    assert spec.scales_exactly(8 * bound * bound)
    expected = gemm(a, b, a_bound=bound, b_bound=bound, requantize=spec, path="reference")
    bound_kernel = bind_product(a.shape, b.shape, bound, bound, spec)
    assert np.array_equal(bound_kernel(a, b), expected)
    assert np.array_equal(gemm(a, b, a_bound=bound, b_bound=bound, requantize=spec), expected)
    assert shift == -1 or np.any(np.abs(expected) == qmax(16))  # (saturated values among them)


def test_a_left_shift_past_the_int64_headroom_is_left_to_the_checked_epilogue():
    spec = Requantize(-20, 16)
    assert not spec.scales_exactly(INT64_SAFE >> 20) and spec.scales_exactly((INT64_SAFE >> 20) - 1)
    wide = Requantize(-31, 16)  # (5 * Q15**2 > 2**31: run checks each value against the headroom)
    assert not wide.scales_exactly(5 * Q15 * Q15) and bind_product((3, 5), (5, 6), Q15, Q15, wide) is None
    assert not Requantize(-2, 16, False, np.array([1])).scales_exactly(1)  # (with a bias: not this form)


def test_operands_too_wide_for_a_float_product_are_not_bound():
    b = prepare(np.full((8, 4), 1 << 40, dtype=np.int64))
    assert bind_gemm((2, 8), b, Q15, Requantize(20)) is None


# -- the interpreter's replays ---------------------------------------------------------------------------------


def _fresh(program):
    return Program.from_bytes(program.to_bytes())


def _bound_ops(replay) -> list[str]:
    """The ops of a replay's steps that run through a bound function (on the fast path, this limb setting), sorted."""
    return sorted(node.op.__name__ for node, *_, step in replay.bound[("fast", limbs.setting())][0] if step)


def test_replays_give_the_metered_and_the_reference_bits(example_program, example_inputs):
    program = _fresh(example_program)
    feeds = integer_feeds(program, example_inputs)
    reference = InferenceSession(_fresh(program), path="reference").run_fixed(example_inputs)
    first_stats, replay_stats = {}, {}
    first = execute(program, feeds, stats=first_stats)
    replay = interpreter._shape_values(program, feeds).replay
    assert isinstance(replay, interpreter.Replay)
    again = execute(program, feeds, stats=replay_stats)
    assert set(_bound_ops(replay)) >= {"Conv", "Gemm"}
    assert replay_stats == first_stats
    for name in first:
        assert np.array_equal(first[name], again[name])
        assert np.array_equal(again[name], reference.outputs[name])
    other = {name: value[::-1].copy() for name, value in feeds.items()}  # other values, the same shapes
    assert all(np.array_equal(execute(program, other)[name], execute(_fresh(program), other)[name]) for name in first)


def test_replays_of_an_8_bit_program_narrow_their_operands_as_the_metered_loop(example_inputs):
    """At matmul_bits=8 the operands are narrowed at run time (ops/_operands.py): the bound kernels narrow them too."""
    from verifier import compile_model
    from verifier_helpers import EXAMPLES

    with np.load(EXAMPLES / "digits_calibration.npz") as data:
        program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration={"input": data["input"]}, matmul_bits=8)
    session, reference = InferenceSession(program), InferenceSession(_fresh(program), path="reference")
    images = example_inputs["input"]
    for feeds in ({"input": images}, {"input": images[::-1] * 0.7}, {"input": images * 0.2}):
        assert session.run_fixed(feeds).commitment == reference.run_fixed(feeds).commitment
    replay = interpreter._shape_values(program, integer_feeds(program, {"input": images})).replay
    assert set(_bound_ops(replay)) >= {"Conv", "Gemm"}


@pytest.mark.parametrize("layout", ["rows", "transposed"])
def test_a_bound_operand_is_narrowed_and_checked_as_the_metered_loop_narrows_it(layout):
    """entering's compiled narrowing: narrowed's integers for any layout, and its OutOfRangeError, in its words, for
    a value past the 16-bit activation range (a hostile program's)."""
    from verifier.errors import OutOfRangeError
    from verifier.ops._operands import entering, narrowed

    attrs = {"operand_bits": 8, "a_shift": 7}
    x = edge_values(np.random.default_rng(9), (12, 5), Q15)
    x = x if layout == "rows" else np.ascontiguousarray(x.T).T
    take = entering(attrs, "a_shift", 16)
    assert np.array_equal(take(x), narrowed(x, attrs, "a_shift", "fast", 16)[0])
    wide = x.copy()
    wide[3, 2] = Q15 + 1
    with pytest.raises(OutOfRangeError) as metered:
        narrowed(wide, attrs, "a_shift", "fast", 16)
    with pytest.raises(OutOfRangeError) as bound:
        take(wide)
    assert str(bound.value) == str(metered.value)


def test_a_replay_stops_at_the_same_node_as_the_metered_loop(example_program, example_inputs):
    program = _fresh(example_program)
    feeds = integer_feeds(program, example_inputs)
    stats = {}
    execute(program, feeds, stats=stats)
    with pytest.raises(CostLimitError) as metered:
        execute(_fresh(program), feeds, max_cost=stats["units"] - 1)
    with pytest.raises(CostLimitError) as replayed:
        execute(program, feeds, max_cost=stats["units"] - 1)
    assert str(replayed.value) == str(metered.value)


def _gather_program():
    nodes = [ProgramNode("Gather", "pick", ["table", "ids"], ["rows"], {"axis": 0}, {}, [8])]
    return Program([TensorInfo("table", (5, 3), "float32", 8), TensorInfo("ids", (4,), "int64", None)],
                   [TensorInfo("rows", (), "float32", 8)], nodes)


def test_a_value_an_op_refuses_in_a_replay_gives_the_metered_error():
    program, table = _gather_program(), np.arange(15, dtype=np.int64).reshape(5, 3)
    execute(program, {"table": table, "ids": np.array([0, 4, 1, 2])})
    bad = {"table": table, "ids": np.array([0, 5, 1, 2])}
    with pytest.raises(ProgramRunError) as replayed:
        execute(program, bad)
    with pytest.raises(ProgramRunError) as metered:
        execute(_gather_program(), bad)
    assert str(replayed.value) == str(metered.value) and "pick" in str(replayed.value)


def _reshaped_program(expand: bool = False):
    """Reshape by a shape the feeds' values give (then, `expand`, Expand to a shape they give): shapes (sizes) that
    follow from values, the same feed shapes."""
    nodes = [ProgramNode("Reshape", "reshape", ["x", "shape"], ["y"], {"allowzero": 0}, {}, [8]),
             ProgramNode("Relu", "relu", ["y"], ["z"], {}, {}, [8])]
    inputs = [TensorInfo("x", (2, 6), "float32", 8), TensorInfo("shape", (2,), "int64", None)]
    if expand:
        nodes.append(ProgramNode("Expand", "expand", ["z", "wide"], ["out"], {}, {}, [8]))
        inputs.append(TensorInfo("wide", (3,), "int64", None))
    return Program(inputs, [TensorInfo("out" if expand else "z", (), "float32", 8)], nodes)


def test_shapes_that_follow_from_values_hand_the_run_back_to_the_metered_loop():
    program = _reshaped_program()
    x = np.arange(-6, 6, dtype=np.int64).reshape(2, 6)
    assert execute(program, {"x": x, "shape": np.array([3, 4])})["z"].shape == (3, 4)
    feeds = {"x": x, "shape": np.array([4, 3])}
    assert np.array_equal(execute(program, feeds)["z"], np.maximum(x.reshape(4, 3), 0))
    assert interpreter._shape_values(program, feeds).replay is False


def test_a_size_that_follows_from_values_is_metered_on_every_replay(monkeypatch):
    program = _reshaped_program(expand=True)
    feeds = {"x": np.zeros((2, 6), dtype=np.int64), "shape": np.array([3, 4]), "wide": np.array([1, 3, 4])}
    execute(program, feeds)
    assert execute(program, {**feeds, "wide": np.array([2, 3, 4])})["out"].shape == (2, 3, 4)
    monkeypatch.setattr(interpreter, "MAX_ELEMENTS", 20)
    with pytest.raises(CostLimitError, match="expand"):
        execute(program, {**feeds, "wide": np.array([5, 3, 4])})


def _normalise_and_add_model():
    """LayerNormalization, then Add / Sub / Mul / Sum of run-time tensors and constants broadcast over leading axes,
    and a Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    constants = {"scale": rng.uniform(0.5, 2, 8), "shift": rng.uniform(-1, 1, 8), "bias": rng.uniform(-2, 2, 8),
                 "rows": rng.uniform(-1, 1, (5, 8))}
    nodes = [helper.make_node("LayerNormalization", ["x", "scale", "shift"], ["normal"], axis=-1),
             helper.make_node("Add", ["normal", "bias"], ["biased"]),
             helper.make_node("Sub", ["biased", "x"], ["residual"]),
             helper.make_node("Add", ["rows", "residual"], ["shifted"]),
             helper.make_node("Mul", ["shifted", "scale"], ["scaled"]),
             helper.make_node("Mul", ["x", "scaled"], ["gated"]),
             helper.make_node("Softmax", ["gated"], ["weights"], axis=-1),
             helper.make_node("Sum", ["weights", "normal"], ["y"])]
    graph = helper.make_graph(nodes, "normalise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in constants.items()])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_bound_elementwise_ops_give_the_reference_bits():
    from verifier import compile_model

    model = _normalise_and_add_model()
    rng = np.random.default_rng(5)
    program = compile_model(model, calibration={"x": rng.uniform(-3, 3, (2, 5, 8)).astype(np.float32)})
    session, reference = InferenceSession(program), InferenceSession(_fresh(program), path="reference")
    x = rng.uniform(-3, 3, (2, 5, 8)).astype(np.float32)
    x[0, 0], x[1, 2] = 3.0, 0.0  # (a row at the edge of the range, a constant row)
    session.run_fixed({"x": x})  # (metered: leaves the replay, which the next run binds)
    session.run_fixed({"x": x})
    replay = interpreter._shape_values(program, integer_feeds(program, {"x": x})).replay
    assert _bound_ops(replay) == ["Add", "Add", "LayerNormalization", "Mul", "Mul", "Softmax", "Sub", "Sum"]
    for values in (x, -x, x[::-1].copy()):
        assert session.run_fixed({"x": values}).commitment == reference.run_fixed({"x": values}).commitment


def test_a_bound_sum_past_its_headroom_gives_the_ops_error():
    """Values a compiled pass cannot shift exactly (only a hostile program's): the bound sum hands them to the op's
    run, which refuses them as it would have."""
    from verifier.ops._binary import bind_sum, run_sum

    attrs = {"signs": [1, 1], "shifts": [20, 0], "acc_frac": 20, "out_frac": 8}
    x, y = np.full((3, 4), 1 << 50, dtype=np.int64), np.ones((3, 4), dtype=np.int64)
    summed = bind_sum([(3, 4), (3, 4)], attrs, {})
    with pytest.raises(Exception) as bound_error:
        summed([x, y])
    with pytest.raises(Exception) as run_error:
        run_sum([x, y], attrs, {})
    assert type(bound_error.value) is type(run_error.value) and str(bound_error.value) == str(run_error.value)
    small = x >> 40
    assert np.array_equal(summed([small, y])[0], run_sum([small, y], attrs, {})[0])


def test_threads_replaying_one_program_at_once_get_their_own_bits(example_program, example_inputs):
    """Bound kernels keep no buffers of their own (scratch space is per thread): runs of one program in several
    threads at once, replaying the same steps, give each input's own commitment. (Threads switch every
    microsecond here, so that they interleave inside the kernels.)"""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    program = _fresh(example_program)
    images = example_inputs["input"]
    inputs = [{"input": np.roll(images, shift, axis=0) * scale} for shift in range(3) for scale in (1.0, 0.5)]
    expected = [InferenceSession(_fresh(program), path="reference").run_fixed(feeds).commitment for feeds in inputs]
    session = InferenceSession(program)
    session.run_fixed(inputs[0])  # (leaves the replay the threads share)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(len(inputs)) as pool:
            for _ in range(5):
                assert list(pool.map(lambda feeds: session.run_fixed(feeds).commitment, inputs)) == expected
    finally:
        sys.setswitchinterval(interval)


def test_kernels_kept_for_one_epilogue_never_serve_another():
    """A prepared weight keeps its kernels per epilogue: fresh epilogues, one after another (the freed one's id
    taken by the next), each get their own."""
    rng = np.random.default_rng(6)
    b = prepare(edge_values(rng, (40, 12), Q15))
    a = edge_values(rng, (3, 40), Q15)
    for shift in list(range(14, 24)) * 2:
        spec = Requantize(shift, 16, bool(shift % 2), rng.integers(-(1 << 30), 1 << 30, 12))
        assert np.array_equal(gemm(a, b, a_bound=Q15, requantize=spec),
                              gemm(a, b, a_bound=Q15, requantize=spec, path="reference"))


@pytest.mark.parametrize("axis,coerce,masked", [(-1, 0, 0), (2, 0, 1), (1, 1, 0), (0, 1, 1)])
def test_a_bound_softmax_equals_its_run(axis, coerce, masked):
    """The last axis, or (opset < 13) the input flattened to 2-D around the axis; masked inputs hold -qmax (-inf)."""
    from verifier.ops.softmax import Softmax

    attrs = {"axis": axis, "coerce": coerce, "in_frac": 10, "out_frac": 14, "masked": masked}
    rng = np.random.default_rng(abs(axis) + 4 * coerce)
    x = rng.integers(-Q15, Q15 + 1, (2, 3, 5))
    x[0, 1, :2] = -Q15
    bound = Softmax.bind([x.shape], attrs, {})
    assert np.array_equal(bound([x])[0], Softmax.run([x], attrs, {})[0])
    assert Softmax.bind([x.shape], {**attrs, "axis": 1, "coerce": 0}, {}) is None  # (not the last axis: run's)


@pytest.mark.parametrize("x_shape,target,allowzero", [((2, 3, 5), [0, -1], 0), ((2, 3, 5), [-1], 0),
                                                     ((2, 3, 5), [2, 0, 5], 0), ((2, 0, 5), [0, 10], 1)])
def test_a_bound_reshape_equals_its_run(x_shape, target, allowzero):
    """A target shape fixed for the run (`fixed`: cached shape arithmetic) or in the attributes: resolved once."""
    from verifier.ops.reshape import Reshape

    x, shape_input = np.arange(math.prod(x_shape), dtype=np.int64).reshape(x_shape), np.array(target, dtype=np.int64)
    attrs = {"allowzero": allowzero}
    expected = Reshape.run([x, shape_input], attrs, {})[0]
    by_input = Reshape.bind([x.shape, shape_input.shape], attrs, {}, {1: shape_input})([x, shape_input])[0]
    by_attribute = Reshape.bind([x.shape], {**attrs, "shape": target}, {}, {})([x])[0]
    for result in (by_input, by_attribute):
        assert result.shape == expected.shape and np.array_equal(result, expected)
    assert Reshape.bind([x.shape, shape_input.shape], attrs, {}, {}) is None  # (a target computed at run time)


@pytest.mark.parametrize("indices", [np.array(2), np.array(-1), np.array([0, -3, 2]), np.array([[1, 1], [-2, 0]])])
def test_a_bound_gather_equals_its_run(indices):
    from verifier.ops.gather import Gather

    data = np.arange(60, dtype=np.int64).reshape(3, 4, 5)
    for axis in (0, -2):
        attrs = {"axis": axis}
        bound = Gather.bind([data.shape, indices.shape], attrs, {}, {1: indices})
        assert np.array_equal(bound([data, indices])[0], Gather.run([data, indices], attrs, {})[0])
        at_run_time = Gather.bind([data.shape, indices.shape], attrs, {}, {})  # (token ids: indices given at run time)
        assert np.array_equal(at_run_time([data, indices])[0], Gather.run([data, indices], attrs, {})[0])
    assert Gather.bind([data.shape, (1,)], {"axis": 0}, {}, {1: np.array([3])}) is None  # (out of range: run's error)
    for outside in (np.array([0, 3]), np.array(-4)):  # (at run time: run's error, in its words)
        with pytest.raises(IndexError, match=r"Gather index outside \[-3, 3\)"):
            Gather.bind([data.shape, outside.shape], {"axis": 0}, {}, {})([data, outside])


@pytest.mark.parametrize("op,attrs,x_shape", [
    ("Flatten", {"axis": 2}, (2, 3, 4, 5)), ("Flatten", {"axis": -1}, (3, 0, 2)), ("Flatten", {"axis": 0}, (2, 3)),
    ("Squeeze", {"axes": [1, -1]}, (4, 1, 3, 1)), ("Squeeze", {}, (1, 2, 1)),
    ("Unsqueeze", {"axes": [0, -1]}, (2, 3)), ("Unsqueeze", {"axes": [1]}, ()),
    ("Transpose", {"perm": [2, 0, 1]}, (2, 3, 4)), ("Transpose", {}, (2, 3, 4)),
])
def test_bound_shape_ops_equal_their_runs_on_any_layout(op, attrs, x_shape):
    """Flatten, Squeeze, Unsqueeze and Transpose bound to an input shape: the values and shape of run's output, for a
    contiguous input and a transposed one (a view run may have to copy)."""
    from verifier.ops import lookup

    kind = lookup(op)
    x = np.arange(math.prod(x_shape), dtype=np.int64).reshape(x_shape)
    for value in (x, np.ascontiguousarray(x.T).T) if x.ndim > 1 else (x,):
        expected, got = kind.run([value], attrs, {})[0], kind.bind([x_shape], attrs, {}, {})([value])[0]
        assert got.shape == expected.shape and np.array_equal(got, expected)


def test_a_shape_op_refusing_its_input_shape_is_left_to_run():
    """A Squeeze of an axis that is not 1 raises where it is bound, so the replay keeps the op's run (replays._bind),
    which reports it."""
    from verifier.ops.squeeze import Squeeze

    with pytest.raises(ValueError):
        Squeeze.bind([(2, 3)], {"axes": [0]}, {}, {})


@pytest.mark.parametrize("x_shape,kernel,strides,pads,dilations,ceil_mode", [
    ((2, 3, 9, 8), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
    ((1, 4, 7, 7), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 1),
    ((1, 2, 11, 6), [3, 2], [1, 2], [2, 0, 0, 1], [2, 1], 0),
    ((2, 3, 13), [4], [3], [1, 2], [1], 1),
])
def test_a_bound_max_pool_equals_its_run(x_shape, kernel, strides, pads, dilations, ceil_mode):
    from verifier.ops.maxpool import MaxPool

    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": dilations, "ceil_mode": ceil_mode}
    x = edge_values(np.random.default_rng(len(x_shape)), x_shape, Q15)
    assert np.array_equal(MaxPool.bind([x_shape], attrs, {}, {})([x])[0], MaxPool.run([x], attrs, {})[0])


def test_a_max_pool_run_refuses_is_not_bound():
    """A window entirely in the padding (only a hostile program's): no bound function, so its run reports it."""
    from verifier.ops.maxpool import MaxPool

    attrs = {"kernel_shape": [2, 2], "strides": [1, 1], "pads": [3, 0, 0, 0], "dilations": [1, 1], "ceil_mode": 0}
    assert MaxPool.bind([(1, 1, 4, 4)], attrs, {}, {}) is None
    with pytest.raises(ValueError, match="padding"):
        MaxPool.run([np.zeros((1, 1, 4, 4), dtype=np.int64)], attrs, {})


def test_programs_past_the_replay_limit_stay_on_the_metered_loop(monkeypatch):
    """A program of more than REPLAY_MAX_NODES nodes records no replay (making its code would cost more than the
    run it saves, for a hostile program of many cheap nodes): the same outputs, run after run."""
    from verifier import replays

    nodes = [ProgramNode(op="Relu", name=f"relu{i}", inputs=[f"t{i}"], outputs=[f"t{i + 1}"], attrs={}, consts={},
                         out_fracs=[8]) for i in range(6)]
    program = Program(inputs=[TensorInfo("t0", [2, 3], "float32", 8)], outputs=[TensorInfo("t6", [2, 3], "float32", 8)],
                      nodes=nodes, constants={}, meta={})
    feeds = {"t0": np.arange(-3, 3, dtype=np.int64).reshape(2, 3)}
    monkeypatch.setattr(replays, "REPLAY_MAX_NODES", 5)
    first, second = execute(program, feeds), execute(program, feeds)
    assert interpreter._shape_values(program, feeds).replay is None
    assert np.array_equal(first["t6"], np.maximum(feeds["t0"], 0)) and np.array_equal(second["t6"], first["t6"])
    monkeypatch.setattr(replays, "REPLAY_MAX_NODES", 6)
    execute(program, feeds)
    assert isinstance(interpreter._shape_values(program, feeds).replay, replays.Replay)
