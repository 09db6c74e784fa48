"""Ops of layers that torch exports and the issue's list left out, each against onnxruntime within its stated
bound (docs/fixed-point.md), in output steps 2**-fy, on inputs already on the program's grid:
ReduceL1 / ReduceL2 / ReduceSumSquare (F.normalize, norms), CumSum, Einsum, InstanceNormalization
(InstanceNorm, GroupNorm) and ConvTranspose; each also runs bit-identically on the reference path."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_ops_coverage import compare, graph_model, rand
from test_ops_nonlinear import assert_within
from verifier import InferenceSession, compile_model
from verifier.errors import OutOfRangeError, UnsupportedOpError, VerifierError
from verifier.fixedpoint import quantize
from verifier.ops._common import weight_frac
from verifier.ops.col2im import Col2Im
from verifier.ops.convtranspose import ConvTranspose
from verifier.ops._norm import GAMMA_BITS
from verifier_helpers import ort_run


def assert_steps(model, feeds, bound):
    for ours, reference, frac in compare(model, feeds):
        assert ours.shape == reference.shape
        assert_within(ours.astype(np.float64) * 2.0**frac, reference.astype(np.float64) * 2.0**frac, bound)


def assert_paths_agree(model, feeds):
    program = compile_model(model, calibration=feeds)
    fast = InferenceSession(program, path="fast").run_fixed(feeds)
    reference = InferenceSession(program, path="reference").run_fixed(feeds)
    assert fast.commitment == reference.commitment


def on_weight_grid(value, bits=16):
    """A constant as the program quantizes it, so onnxruntime sees the same weights."""
    frac = weight_frac(value, bits)
    return (quantize(value, frac, bits) * 2.0**-frac).astype(np.float32)


# norms and sums of powers ---------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare"])
@pytest.mark.parametrize("opset,axes,keepdims", [(13, [1], 1), (18, [0, -1], 0), (18, None, 1), (13, [-1], 0)])
def test_norm_reductions_round_once(op, opset, axes, keepdims):
    feeds = {"x": rand(3, 4, 5)}
    feeds["x"].flat[:2] = [0.0, -feeds["x"].max()]
    if axes is not None and opset >= 18:
        node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
        model = graph_model([node], feeds, {"axes": np.array(axes, np.int64)}, opset=opset)
    else:
        node = helper.make_node(op, ["x"], ["y"], keepdims=keepdims, **({"axes": axes} if axes else {}))
        model = graph_model([node], feeds, opset=opset)
    assert_steps(model, feeds, 0.5)
    assert_paths_agree(model, feeds)


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare"])
def test_norm_reductions_with_noop_empty_axes_act_elementwise(op):
    feeds = {"x": rand(2, 6)}
    model = graph_model([helper.make_node(op, ["x"], ["y"], noop_with_empty_axes=1)], feeds, opset=18)
    assert_steps(model, feeds, 0.5)


def test_l2_norm_of_zeros_and_of_a_single_element_is_exact():
    feeds = {"x": np.array([[0.0, 0.0, 0.0], [0.0, -1.5, 0.0], [3.0, 4.0, 0.0]], np.float32)}
    model = graph_model([helper.make_node("ReduceL2", ["x"], ["y"], axes=[1])], feeds, opset=13)
    ours, reference, _ = compare(model, feeds)[0]
    assert np.array_equal(ours, reference)  # 0, 1.5 and 5 are on every grid


def test_l2_norm_of_a_plain_integer_tensor_is_refused_by_name():
    feeds = {"x": np.arange(6, dtype=np.int64).reshape(2, 3)}
    model = graph_model([helper.make_node("ReduceL2", ["x"], ["y"], axes=[1])], feeds, opset=13)
    with pytest.raises(UnsupportedOpError, match="ReduceL2.*plain integer"):
        compile_model(model, calibration=feeds)


# CumSum ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum_in_every_direction_rounds_once(exclusive, reverse, axis):
    feeds = {"x": rand(4, 7)}
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    model = graph_model([node], feeds, {"axis": np.array(axis, np.int64)}, opset=14)
    assert_steps(model, feeds, 0.5)


def test_cumsum_of_int64_is_exact():
    feeds = {"x": np.random.default_rng(0).integers(-1000, 1000, (3, 5)).astype(np.int64)}
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=1)
    model = graph_model([node], feeds, {"axis": np.array([1], np.int32)}, opset=14)
    assert np.array_equal(InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)[0],
                          ort_run(model, feeds)[0])


def test_cumsum_with_a_run_time_axis_is_refused_by_name():
    feeds = {"x": rand(2, 3), "axis": np.array(1, np.int64)}
    node = helper.make_node("CumSum", ["x", "axis"], ["y"])
    model = graph_model([node], feeds, opset=14)
    with pytest.raises(UnsupportedOpError, match="CumSum.*constant"):
        compile_model(model, calibration=feeds)


# Einsum ----------------------------------------------------------------------------------------------

EQUATIONS = [
    ("bij,bjk->bik", [(3, 4, 5), (3, 5, 6)]), ("ij,jk", [(4, 5), (5, 6)]),
    ("bhid,bhjd->bhij", [(2, 3, 4, 8), (2, 3, 5, 8)]), ("...ij,...jk->...ik", [(2, 4, 5), (2, 5, 3)]),
    ("ii->i", [(5, 5)]), ("ij->", [(4, 6)]), ("i,i", [(7,), (7,)]), ("i,j->ij", [(4,), (5,)]),
    ("ij->ji", [(3, 4)]), ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]), ("bti,io->bto", [(2, 3, 6), (6, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_rounds_once(equation, shapes):
    feeds = {f"x{i}": rand(*shape, scale=1.0, seed=i) for i, shape in enumerate(shapes)}
    model = graph_model([helper.make_node("Einsum", list(feeds), ["y"], equation=equation)], feeds, opset=12)
    assert_steps(model, feeds, 0.5)
    assert_paths_agree(model, feeds)


def test_einsum_with_a_constant_operand_as_torch_exports_a_parameter():
    feeds = {"x": rand(2, 5, 8)}
    weight = on_weight_grid(rand(8, 3, seed=4))
    model = graph_model([helper.make_node("Einsum", ["x", "w"], ["y"], equation="bti,io->bto")], feeds,
                        {"w": weight}, opset=12)
    assert_steps(model, feeds, 0.5)


def test_einsum_of_int64_is_exact():
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(-50, 50, (3, 4)).astype(np.int64), "b": rng.integers(-50, 50, (4, 2)).astype(np.int64)}
    model = graph_model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")], feeds, opset=12)
    assert np.array_equal(InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)[0],
                          ort_run(model, feeds)[0])


def test_einsum_refuses_an_equation_that_does_not_fit_its_operands():
    feeds = {"a": rand(3, 4), "b": rand(4, 2)}
    model = graph_model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")], feeds, opset=12)
    model.graph.node[0].attribute[0].s = b"ijk,jk->ik"
    with pytest.raises(VerifierError, match="Einsum"):
        compile_model(model, calibration=feeds)


def test_einsum_of_int64_past_the_accumulator_bound_is_a_clear_error():
    feeds = {"a": np.full((2, 3), 2**31, np.int64), "b": np.full((3, 2), 2**31, np.int64)}
    model = graph_model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")], feeds, opset=12)
    with pytest.raises(OutOfRangeError, match="exceed int64"):
        InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)
    feeds["a"][1, 2] = np.iinfo(np.int64).min  # (|INT64_MIN| wraps to itself: the bound must not take max |x|)
    feeds["a"][0, 0], feeds["b"][...] = 5, 3
    with pytest.raises(OutOfRangeError, match="exceed int64"):
        InferenceSession(compile_model(model, calibration={"a": np.ones((2, 3), np.int64), "b": feeds["b"]})).run(
            None, feeds)


# InstanceNormalization -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 4, 9), (1, 2, 3, 4, 5)])
def test_instance_normalization_is_within_0_51_steps_on_the_quantized_scale(shape):
    rng = np.random.default_rng(len(shape))
    channels = shape[1]
    scale = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    bias = rng.uniform(-1, 1, channels).astype(np.float32)
    x = (rng.normal(0, 2, shape) + rng.normal(0, 3, shape[:2] + (1,) * (len(shape) - 2))).astype(np.float32)
    gamma_frac = GAMMA_BITS - 1 - int(np.ceil(np.log2(scale.max())))
    scale = (np.round(scale * 2.0**gamma_frac) * 2.0**-gamma_frac).astype(np.float32)
    feeds = {"x": x}
    model = graph_model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)], feeds,
                        {"s": scale, "b": bias}, opset=6)
    assert_steps(model, feeds, 0.51)


def test_instance_normalization_over_too_many_elements_is_refused_by_name():
    feeds = {"x": rand(1, 1, 300, 300)}
    model = graph_model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"])], feeds,
                        {"s": np.ones(1, np.float32), "b": np.zeros(1, np.float32)}, opset=6)
    with pytest.raises(UnsupportedOpError, match="InstanceNormalization.*90000 elements"):
        compile_model(model, calibration=feeds)


# ConvTranspose ---------------------------------------------------------------------------------------

CONV_TRANSPOSE = [
    ((2, 3, 4, 5), (3, 2, 3, 3), {}),
    ((1, 4, 3, 3), (4, 2, 2, 2), {"strides": [2, 2]}),
    ((1, 4, 5, 4), (4, 3, 3, 3), {"strides": [2, 1], "pads": [1, 0, 1, 1], "output_padding": [1, 0]}),
    ((2, 4, 4, 4), (4, 1, 3, 3), {"group": 2, "dilations": [2, 1], "strides": [1, 2]}),
    ((1, 2, 7), (2, 3, 4), {"strides": [3], "pads": [1, 2]}),
    ((1, 2, 3, 3, 2), (2, 2, 2, 2, 2), {"strides": [2, 1, 2]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
]


@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_TRANSPOSE, ids=[str(a) for _, _, a in CONV_TRANSPOSE])
def test_conv_transpose_rounds_once_on_the_quantized_weights(x_shape, w_shape, attrs, bits):
    feeds = {"x": rand(*x_shape)}
    weight = on_weight_grid(rand(*w_shape, scale=0.5, seed=1))
    bias = rand(w_shape[1] * attrs.get("group", 1), seed=2)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    model = graph_model([node], feeds, {"w": weight, "b": bias}, opset=17)
    if bits == 16:
        assert_steps(model, feeds, 0.5)
    program = compile_model(model, calibration=feeds, matmul_bits=bits)
    fast = InferenceSession(program, path="fast").run_fixed(feeds)
    assert fast.commitment == InferenceSession(program, path="reference").run_fixed(feeds).commitment
    assert fast.outputs["y"].shape == ort_run(model, feeds)[0].shape


def test_conv_transpose_run_on_the_wrong_channel_count_is_a_clear_error():
    """A hand-made program can feed a node any shape; the op names what does not fit."""
    feeds = {"x": rand(1, 3, 4, 4)}
    model = graph_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"])], feeds,
                        {"w": rand(3, 2, 3, 3, seed=1)}, opset=17)
    node = compile_model(model, calibration=feeds).nodes[0]
    with pytest.raises(ValueError, match="ConvTranspose: input of shape \\(1, 2, 4, 4\\) for 3 channels"):
        ConvTranspose.run([np.zeros((1, 2, 4, 4), np.int64)], node.attrs, node.consts)


# Resize: linear and cubic -----------------------------------------------------------------------------

RESIZES = [("linear", "half_pixel", [1, 1, 2, 2], {}), ("linear", "align_corners", [1, 1, 1.7, 3.0], {}),
           ("linear", "asymmetric", [1, 1, 0.5, 0.75], {}), ("linear", "pytorch_half_pixel", [1, 1, 0.3, 1], {}),
           ("linear", "half_pixel", [1, 1, 0.5, 0.6], {"antialias": 1}),
           ("cubic", "half_pixel", [1, 1, 2, 2], {}), ("cubic", "align_corners", [1, 1, 1.7, 0.75], {}),
           ("cubic", "half_pixel", [1, 1, 0.5, 0.75], {"exclude_outside": 1, "cubic_coeff_a": -0.5}),
           ("cubic", "asymmetric", [1, 1, 0.6, 2.5], {"antialias": 1}),
           ("linear", "half_pixel", [1, 1, 2, 1.5, 2], {})]


@pytest.mark.parametrize("mode,coordinates,scales,attrs", RESIZES, ids=[f"{m}-{c}-{s}-{a}" for m, c, s, a in RESIZES])
def test_resize_interpolation_rounds_once_plus_the_weights_rounding(mode, coordinates, scales, attrs):
    feeds = {"x": rand(*((2, 3, 7, 9) if len(scales) == 4 else (1, 2, 3, 4, 5)))}
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                            coordinate_transformation_mode=coordinates, **attrs)
    model = graph_model([node], feeds, {"scales": np.array(scales, np.float32)}, opset=19)
    program = compile_model(model, calibration=feeds)
    attrs, consts = program.nodes[0].attrs, program.nodes[0].consts
    # each of the n weights of an output is off by at most 2**-(w+1): n * 2**-(w+1) * max|x| per axis, carried
    # through the later axes (whose |weights| sum to at most 1.25)
    weights = sum(consts[f"weights{a}"].shape[1] * 2.0 ** -(attrs["weight_bits"] + 1) * 32767 for a in attrs["axes"])
    assert_steps(model, feeds, 0.5 + 1.25 ** (len(attrs["axes"]) - 1) * weights)
    assert_paths_agree(model, feeds)


def test_resize_interpolation_keeps_a_constant_input_exactly():
    feeds = {"x": np.full((1, 2, 5, 7), 1.375, np.float32)}
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", antialias=1)
    model = graph_model([node], feeds, {"scales": np.array([1, 1, 0.6, 1.9], np.float32)}, opset=19)
    ours = InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)[0]
    assert ours.shape == (1, 2, 3, 13) and np.all(ours == 1.375)


def test_resize_half_pixel_symmetric_follows_the_onnx_reference():
    """onnxruntime 1.32 departs from the ONNX formula for half_pixel_symmetric on some downscales; the
    fixed-point program follows the formula (the onnx reference evaluator)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {"x": rand(1, 2, 7, 9)}
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode="half_pixel_symmetric")
    model = graph_model([node], feeds, {"scales": np.array([1, 1, 0.5, 0.75], np.float32)}, opset=19)
    program = compile_model(model, calibration=feeds)
    frac = program.inputs[0].frac
    on_grid = {"x": (np.round(feeds["x"] * 2.0**frac) * 2.0**-frac).astype(np.float32)}
    ours = InferenceSession(program).run(None, on_grid)[0]
    reference = ReferenceEvaluator(model).run(None, on_grid)[0]
    assert np.max(np.abs(ours - reference)) * 2.0 ** program.outputs[0].frac <= 0.5 + 2 * 2.0**-23 * 32767


def test_resize_tf_crop_and_resize_is_refused_by_name():
    feeds = {"x": rand(1, 1, 4, 4)}
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode="tf_crop_and_resize")
    model = graph_model([node], feeds, {"roi": np.array([0, 0, 0.2, 0.2, 1, 1, 0.8, 0.8], np.float32),
                                        "scales": np.array([1, 1, 2, 2], np.float32)}, opset=13)
    with pytest.raises(UnsupportedOpError, match="Resize.*tf_crop_and_resize"):
        compile_model(model, calibration=feeds)


# log-sum-exp and log-sum ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ReduceLogSumExp", "ReduceLogSum"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), (None, 1)])
def test_log_reductions_round_once(op, axes, keepdims):
    x = rand(3, 4, 5, scale=4.0)
    feeds = {"x": np.abs(x) + 0.25 if op == "ReduceLogSum" else x}
    node = helper.make_node(op, ["x"], ["y"], keepdims=keepdims, **({"axes": axes} if axes else {}))
    model = graph_model([node], feeds, opset=13)
    assert_steps(model, feeds, 0.5 + 2.0**-26 * 2.0**compile_model(model, calibration=feeds).outputs[0].frac)


def test_log_sum_of_zero_and_negative_sums_saturates_and_zeroes_as_the_log_table():
    feeds = {"x": np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5]], np.float32)}
    model = graph_model([helper.make_node("ReduceLogSum", ["x"], ["y"], axes=[1], keepdims=0)], feeds, opset=13)
    program = compile_model(model, calibration=feeds)
    y = InferenceSession(program).run_fixed(feeds).outputs["y"]
    assert y[1] == -32767 and y[2] == 0 and abs(y[0] * 2.0 ** -program.outputs[0].frac - np.log(3)) < 2.0**-program.outputs[0].frac


# CastLike, and comparisons with an infinite constant ------------------------------------------------------

@pytest.mark.parametrize("target", [np.array([1], np.int64), np.array([1.0], np.float32), np.array([True])])
def test_cast_like_casts_to_its_target_type(target):
    feeds = {"x": np.array([-2.75, -0.5, 0.0, 1.25, 3.5], np.float32)}
    model = graph_model([helper.make_node("CastLike", ["x", "t"], ["y"])], feeds, {"t": target}, opset=15)
    ours = InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)[0]
    reference = ort_run(model, feeds)[0]
    assert ours.dtype == reference.dtype and np.array_equal(ours, reference)


def test_a_fully_masked_attention_row_equals_minus_infinity_as_in_float():
    """ONNX's Attention function zeroes a row whose bias is all -inf: Equal(ReduceMax(bias), -inf). A bias
    that may hold -inf (seen in calibration) is saturated there, and the -inf constant is that saturation."""
    feeds = {"mask": np.array([[True, False, True], [False, False, False]])}
    nodes = [helper.make_node("Where", ["mask", "zero", "minus_inf"], ["bias"]),
             helper.make_node("ReduceMax", ["bias"], ["row_max"], axes=[1], keepdims=0),
             helper.make_node("Equal", ["row_max", "minus_inf"], ["y"])]
    model = graph_model(nodes, feeds, {"zero": np.array(0.0, np.float32), "minus_inf": np.array(-np.inf, np.float32)},
                        opset=17)
    assert InferenceSession(compile_model(model, calibration=feeds)).run(None, feeds)[0].tolist() == [False, True]
    assert ort_run(model, feeds)[0].tolist() == [False, True]


@pytest.mark.parametrize("p,axis", [(2, -1), (2, 1), (1, -1)])
def test_lp_normalization_rounds_once(p, axis):
    feeds = {"x": rand(3, 4, 6)}
    feeds["x"][0, 0] = 0.0  # a zero vector gives 0
    model = graph_model([helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis)], feeds, opset=13)
    assert_steps(model, feeds, 0.5 + 2.0**-31 * 2.0**15)


@pytest.mark.parametrize("opset,mode", [(9, "nearest"), (9, "linear"), (7, "nearest")])
def test_upsample_of_old_exports_follows_onnxruntime(opset, mode):
    feeds = {"x": rand(1, 2, 3, 4)}
    scales = np.array([1, 1, 2, 3], np.float32)
    if opset == 7:
        model = graph_model([helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=scales.tolist())], feeds,
                            opset=7)
    else:
        model = graph_model([helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)], feeds, {"s": scales}, opset=9)
    assert_steps(model, feeds, 0.0 if mode == "nearest" else 0.5 + 2 * 2.0**-24 * 32767)


# GridSample -------------------------------------------------------------------------------------------

GRID_CASES = [(mode, padding, align) for mode in ("bilinear", "nearest") for padding in ("zeros", "border", "reflection")
              for align in (0, 1)]


@pytest.mark.parametrize("mode,padding,align", GRID_CASES, ids=[f"{m}-{p}-{a}" for m, p, a in GRID_CASES])
def test_grid_sample_follows_onnxruntime(mode, padding, align):
    rng = np.random.default_rng(len(mode) + len(padding) + align)
    feeds = {"x": rand(2, 3, 5, 6), "grid": rng.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)}
    feeds["grid"][0, 0, :3] = [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]  # corners and centre exactly
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)
    assert_steps(graph_model([node], feeds, opset=16), feeds, 0.0 if mode == "nearest" else 0.5)


# Col2Im (torch's F.fold; onnxruntime's CPU provider has no Col2Im: the onnx reference evaluator is the reference)
def col2im_model(x, image, block, attrs, blocks="L"):
    """A Col2Im model; its input's block count is symbolic (`blocks`) unless given."""
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], **attrs)
    dtype = helper.np_dtype_to_tensor_dtype(x.dtype)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, list(x.shape[:2]) + [blocks])],
                              [helper.make_tensor_value_info("y", dtype, [x.shape[0], None] + [None] * len(image))],
                              [numpy_helper.from_array(np.array(image, np.int64), "image"),
                               numpy_helper.from_array(np.array(block, np.int64), "block")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@pytest.mark.parametrize("x_shape, image, block, attrs", [
    ((2, 12, 12), [5, 5], [2, 3], {}),
    ((1, 8, 12), [6, 6], [2, 2], {"strides": [2, 2], "pads": [1, 0, 1, 0]}),
    ((1, 4, 18), [7, 6], [2, 2], {"dilations": [2, 1], "strides": [1, 2], "pads": [0, 1, 1, 0]}),
    ((2, 6, 4), [7], [3], {"strides": [2], "pads": [1, 2]}),
    ((1, 16, 8), [3, 3, 3], [2, 2, 2], {}),
])
def test_col2im_adds_overlapping_blocks_and_rounds_once(x_shape, image, block, attrs):
    from onnx.reference import ReferenceEvaluator

    x = rand(*x_shape)
    model = col2im_model(x, image, block, attrs)
    program = compile_model(model, calibration={"x": x})
    step = program.inputs[0].steps()
    x = (np.round(x / step) * step).astype(np.float32)  # both sides sum the same quantized values
    ours, reference = InferenceSession(program).run(None, {"x": x})[0], ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) <= 0.5 * 2.0 ** -program.outputs[0].frac + 1e-6


def test_col2im_of_int64_is_exact_and_a_wrong_block_count_is_a_clear_error():
    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(0).integers(-1000, 1000, (2, 8, 9)).astype(np.int64)
    model = col2im_model(x, [6, 6], [2, 2], {"strides": [2, 2]})
    program = compile_model(model, calibration={"x": x})
    assert np.array_equal(InferenceSession(program).run(None, {"x": x})[0],
                          ReferenceEvaluator(model).run(None, {"x": x})[0])
    node = program.nodes[0]
    with pytest.raises(ValueError, match=r"Col2Im: input of shape \(2, 8, 10\) is not \(N, C \* 4, 9\)"):
        Col2Im.run([np.zeros((2, 8, 10), np.int64)], node.attrs, node.consts)
