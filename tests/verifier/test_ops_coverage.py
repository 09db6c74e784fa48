"""The remaining issue-3 ops against onnxruntime, each with its stated bound (in units of the output step,
LSB = 2**-fy; both sides see the same quantized input, so the difference is the op's own error):
exact (0 LSB) for selections, comparisons, index ops, shape arithmetic and type changes; <= 0.5 LSB for ops
that round once (ReduceMean, ReduceSum, MatMul of two run-time tensors, Where across two scales)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier.fixedpoint import dequantize, quantize
from verifier_helpers import ort_run

FLOAT_SLACK = 1e-3  # onnxruntime's own float32 rounding, in LSB


def rand(*shape, scale=2.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def graph_model(nodes, feeds, initializers=None, outputs=("y",), opset=17, dynamic_batch=False):
    """A model of `nodes` whose graph inputs are `feeds` (name -> example array); output types found by
    running onnxruntime once on the feeds."""
    initializers = initializers or {}
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                            (["batch"] + list(value.shape[1:])) if dynamic_batch else value.shape)
              for name, value in feeds.items()]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers.items()])
    untyped = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    results = ort_run(untyped, feeds)
    typed = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(np.asarray(r).dtype), np.asarray(r).shape)
             for o, r in zip(outputs, results)]
    del graph.output[:]
    graph.output.extend(typed)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def compare(model, feeds):
    """[(ours, onnxruntime's on the quantized feeds, output frac)] for every output."""
    program = compile_model(model, calibration=feeds)
    ours = InferenceSession(program).run(None, feeds)
    quantized = {i.name: dequantize(quantize(feeds[i.name], i.frac), i.frac) if i.frac is not None else feeds[i.name]
                 for i in program.inputs}
    reference = ort_run(model, quantized)
    return [(np.asarray(o), np.asarray(r), info.frac) for o, r, info in zip(ours, reference, program.outputs)]


def assert_exact(model, feeds):
    for ours, reference, _ in compare(model, feeds):
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        assert np.array_equal(ours, reference)


def assert_within(model, feeds, lsb):
    for ours, reference, frac in compare(model, feeds):
        assert ours.shape == reference.shape
        assert np.max(np.abs(ours.astype(np.float64) - reference)) * 2.0**frac <= lsb + FLOAT_SLACK


# selection and comparison ----------------------------------------------------------------------------

def test_where_on_a_computed_condition_with_broadcasting_and_a_constant_branch():
    feeds = {"a": rand(4, 8), "b": rand(4, 1, seed=1)}
    nodes = [helper.make_node("Greater", ["a", "b"], ["c"]), helper.make_node("Where", ["c", "a", "k"], ["y"])]
    model = graph_model(nodes, feeds, {"k": rand(1, 8, scale=0.5, seed=2)})
    assert_within(model, feeds, 0.5)  # the constant is quantized at the common frac, then one requantization


def test_where_with_a_bool_graph_input_selects_exactly():
    feeds = {"c": np.random.default_rng(0).random((3, 5)) > 0.5, "a": rand(3, 5), "b": rand(3, 5, seed=1)}
    assert_within(graph_model([helper.make_node("Where", ["c", "a", "b"], ["y"])], feeds), feeds, 0.5)


@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
def test_comparisons_of_int64_tensors_with_broadcasting_are_exact(op):
    rng = np.random.default_rng(1)
    feeds = {"a": rng.integers(-3, 4, (4, 6)).astype(np.int64), "b": rng.integers(-3, 4, (1, 6)).astype(np.int64)}
    assert_exact(graph_model([helper.make_node(op, ["a", "b"], ["y"])], feeds), feeds)


@pytest.mark.parametrize("op", ["Equal", "Greater", "Less"])
def test_comparison_of_a_tensor_with_a_float_constant_is_exact(op):
    feeds = {"x": np.round(rand(4, 8) * 4) / 4}  # on a coarse grid: Equal sees exact ties
    model = graph_model([helper.make_node(op, ["x", "k"], ["y"])], feeds, {"k": np.array(0.25, np.float32)})
    assert_exact(model, feeds)


@pytest.mark.parametrize("constant_first", [False, True])
@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
def test_comparison_with_a_constant_between_grid_points_compares_its_exact_value(op, constant_first):
    feeds = {"x": rand(6, 50)}
    program = compile_model(graph_model([helper.make_node("Identity", ["x"], ["y"])], feeds), calibration=feeds)
    step = 2.0 ** -program.inputs[0].frac
    thresholds = np.array([0.1, -0.3, 2 * step, 0.5 * step, 7.5 * step], np.float32)  # mostly off the grid
    grid = dequantize(quantize(feeds["x"], program.inputs[0].frac), program.inputs[0].frac)
    grid[:, :len(thresholds)] = np.round(thresholds / step) * step  # the grid points next to each threshold
    for threshold in thresholds:
        names = ["k", "x"] if constant_first else ["x", "k"]
        model = graph_model([helper.make_node(op, names, ["y"])], {"x": grid}, {"k": threshold})
        assert_exact(model, {"x": grid})


def test_torch_style_hardshrink_uses_or_of_two_comparisons_and_is_exact():
    feeds = {"x": np.round(rand(4, 8) * 8) / 8}
    nodes = [helper.make_node("Greater", ["x", "hi"], ["g"]), helper.make_node("Less", ["x", "lo"], ["l"]),
             helper.make_node("Or", ["g", "l"], ["keep"]), helper.make_node("Where", ["keep", "x", "zero"], ["y"])]
    initializers = {"hi": np.array(0.5, np.float32), "lo": np.array(-0.5, np.float32), "zero": np.array(0.0, np.float32)}
    assert_exact(graph_model(nodes, feeds, initializers), feeds)


# index ops -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [{"axis": 1}, {"axis": 0, "keepdims": 0}, {"axis": -1, "select_last_index": 1}])
def test_argmax_including_ties_is_exact(attrs):
    feeds = {"x": np.round(rand(5, 7, 3)).astype(np.float32)}  # integers: many ties
    assert_exact(graph_model([helper.make_node("ArgMax", ["x"], ["y"], **attrs)], feeds), feeds)


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_values_and_indices_are_exact(largest):
    feeds = {"x": rand(4, 9)}
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1, largest=largest)
    model = graph_model([node], feeds, {"k": np.array([4], np.int64)}, outputs=("values", "indices"))
    assert_exact(model, feeds)


def test_gather_of_embedding_rows_by_int64_ids_including_negative_ones_is_exact_on_the_quantized_table():
    table = rand(20, 6, seed=3)
    feeds = {"ids": np.array([[0, 19, -1, 5], [7, 7, -20, 3]], np.int64)}
    model = graph_model([helper.make_node("Gather", ["table", "ids"], ["y"])], feeds, {"table": table})
    (ours, reference, frac), = compare(model, feeds)
    assert ours.shape == (2, 4, 6)
    assert np.array_equal(ours, dequantize(quantize(reference, frac), frac))  # the table's own 16-bit rounding only


def test_gather_along_axis_1_of_a_run_time_tensor_is_exact():
    feeds = {"x": rand(3, 8, 2)}
    model = graph_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], feeds, {"i": np.array([[1, -1], [0, 4]])})
    assert_exact(model, feeds)


@pytest.mark.parametrize("axis,index", [(0, 2), (1, -1), (2, 0)])
def test_gather_of_one_scalar_index_on_any_axis_is_exact(axis, index):
    """A 0-d index (q, k, v out of a stacked projection) takes a view of its row, no copy; negative ones too."""
    feeds = {"x": rand(3, 4, 5)}
    model = graph_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)], feeds, {"i": np.array(index)})
    assert_exact(model, feeds)


def test_shape_gather_arithmetic_reshapes_a_dynamic_batch_exactly():
    feeds = {"x": rand(5, 4, 3)}
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["b"]),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]), helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    initializers = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    model = graph_model(nodes, feeds, initializers, dynamic_batch=True)
    assert_exact(model, feeds)
    other = {"x": rand(2, 4, 3, seed=1)}
    ours = InferenceSession(compile_model(model, calibration=feeds)).run(None, other)[0]
    assert ours.shape == (2, 12)


@pytest.mark.parametrize("opset,attrs,initializers,outputs", [
    (11, {"axis": 1, "split": [2, 3, 1]}, {}, 3),
    (13, {"axis": 1}, {"sizes": np.array([4, 2], np.int64)}, 2),
    (18, {"axis": 1, "num_outputs": 4}, {}, 4),  # 7 columns into 4 parts: 2, 2, 2, 1
])
def test_split_by_attribute_input_or_count_is_exact(opset, attrs, initializers, outputs):
    feeds = {"x": rand(3, 7 if opset == 18 else 6)}
    names = [f"y{i}" for i in range(outputs)]
    node = helper.make_node("Split", ["x"] + list(initializers), names, **attrs)
    assert_exact(graph_model([node], feeds, initializers, outputs=names, opset=opset), feeds)


def test_expand_and_tile_of_a_run_time_tensor_are_exact():
    feeds = {"x": rand(3, 1)}
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node("Tile", ["e", "repeats"], ["y"])]
    model = graph_model(nodes, feeds, {"shape": np.array([2, 3, 4], np.int64), "repeats": np.array([1, 2, 2], np.int64)})
    assert_exact(model, feeds)


# type changes and sign -------------------------------------------------------------------------------

@pytest.mark.parametrize("to", [TensorProto.INT64, TensorProto.BOOL, TensorProto.FLOAT])
def test_cast_of_a_fixed_point_tensor_is_exact(to):
    feeds = {"x": np.concatenate([rand(4, 8), [[0.0, -0.75, 0.75, 2.5, -2.5, 3.0, -3.0, 0.25]]]).astype(np.float32)}
    assert_exact(graph_model([helper.make_node("Cast", ["x"], ["y"], to=to)], feeds), feeds)


def test_cast_of_large_int64_values_to_float_keeps_their_scale():
    feeds = {"n": np.array([[100000, -250000, 7, 0]], np.int64)}  # beyond 16 bits at frac 0: a coarser scale
    (ours, reference, frac), = compare(graph_model([helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)], feeds), feeds)
    assert frac < 0
    assert np.max(np.abs(ours - reference)) <= 2.0 ** -(frac + 1)


def test_cast_of_int64_token_counts_to_float_and_back_is_exact():
    feeds = {"n": np.random.default_rng(2).integers(-50, 50, (3, 4)).astype(np.int64)}
    nodes = [helper.make_node("Cast", ["n"], ["f"], to=TensorProto.FLOAT), helper.make_node("Mul", ["f", "two"], ["m"]),
             helper.make_node("Cast", ["m"], ["y"], to=TensorProto.INT64)]
    assert_exact(graph_model(nodes, feeds, {"two": np.array(2.0, np.float32)}), feeds)


def test_sign_is_exact():
    feeds = {"x": np.concatenate([rand(3, 8), np.zeros((1, 8))]).astype(np.float32)}
    assert_exact(graph_model([helper.make_node("Sign", ["x"], ["y"])], feeds), feeds)


# reductions with axes as attribute or input, batched MatMul -----------------------------------------

@pytest.mark.parametrize("op,opset,as_input,bound", [
    ("ReduceMean", 13, False, 0.5), ("ReduceMean", 18, True, 0.5),
    ("ReduceSum", 11, False, 0.5), ("ReduceSum", 13, True, 0.5),
    ("ReduceMax", 13, False, 0.0), ("ReduceMax", 18, True, 0.0),
])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduction_with_axes_as_attribute_or_input(op, opset, as_input, bound, keepdims):
    feeds = {"x": rand(3, 4, 5)}
    axes = np.array([0, -1], np.int64)
    if as_input:
        model = graph_model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)], feeds, {"axes": axes}, opset=opset)
    else:
        model = graph_model([helper.make_node(op, ["x"], ["y"], axes=axes.tolist(), keepdims=keepdims)], feeds, opset=opset)
    assert_within(model, feeds, bound)


@pytest.mark.parametrize("a_shape,b_shape", [((2, 1, 4, 5), (3, 5, 6)), ((2, 3, 4, 5), (2, 3, 5, 4)), ((4, 5), (2, 5, 3))])
def test_matmul_of_two_run_time_tensors_with_batch_broadcasting_rounds_once(a_shape, b_shape):
    feeds = {"a": rand(*a_shape), "b": rand(*b_shape, seed=1)}
    assert_within(graph_model([helper.make_node("MatMul", ["a", "b"], ["y"])], feeds), feeds, 0.5)


def test_resize_nearest_by_sizes_as_torch_upsample_exports_is_exact():
    feeds = {"x": rand(1, 2, 3, 5)}
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    assert_exact(graph_model([node], feeds, {"sizes": np.array([1, 2, 7, 9], np.int64)}, opset=13), feeds)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("magnitude", [1e6, 1e19, 1e35])
def test_softmax_and_log_softmax_of_huge_logits_match_onnxruntime(op, magnitude):
    feeds = {"x": rand(4, 10, scale=magnitude)}  # input frac far below 0 (about -50 at 1e19)
    model = graph_model([helper.make_node(op, ["x"], ["y"], axis=-1)], feeds)
    (ours, reference, frac), = compare(model, feeds)
    assert np.all(np.isfinite(ours))
    if op == "Softmax":
        assert np.max(np.abs(ours - reference)) <= 0.501 * 2.0**-frac
    else:
        assert np.max(np.abs(ours - reference)) <= 0.501 * 2.0**-frac + 1e-6 * np.max(np.abs(reference))


@pytest.mark.parametrize("upper", [1, 0])
@pytest.mark.parametrize("k", [None, 0, 1, -2])
def test_trilu_keeps_a_triangle_exactly(upper, k):
    feeds = {"x": rand(2, 5, 6)}
    initializers = {} if k is None else {"k": np.array(k, np.int64)}
    node = helper.make_node("Trilu", ["x"] + list(initializers), ["y"], upper=upper)
    assert_exact(graph_model([node], feeds, initializers, opset=14), feeds)


def test_trilu_of_int64_with_a_run_time_offset_is_exact():
    feeds = {"x": np.arange(24, dtype=np.int64).reshape(4, 6), "k": np.array(1, np.int64)}
    assert_exact(graph_model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=0)], feeds, opset=14), feeds)


def test_a_constant_holding_nan_is_refused_naming_it():
    from verifier.errors import CompileError

    feeds = {"x": rand(2, 4)}
    model = graph_model([helper.make_node("Add", ["x", "bias"], ["y"])], feeds,
                        {"bias": np.array([0, np.nan, 0, 0], np.float32)})
    with pytest.raises(CompileError, match="'bias' holds NaN"):
        compile_model(model, calibration=feeds)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("mask_source", ["constant", "where"])
def test_minus_inf_attention_mask_gives_exactly_zero_probability(op, mask_source):
    rng = np.random.default_rng(5)
    feeds = {"scores": rand(6, 5, scale=3.0), "pad": rng.random((6, 5)) < 0.4}
    feeds["pad"][:, 0] = False  # every row keeps one position
    feeds["pad"][0] = [False, True, True, True, True]
    if mask_source == "constant":
        initializers = {"mask": np.where(feeds.pop("pad")[0], -np.inf, 0).astype(np.float32)}
        nodes = [helper.make_node("Add", ["scores", "mask"], ["masked"])]
    else:
        initializers = {"minus_inf": np.array(-np.inf, np.float32), "zero": np.array(0.0, np.float32)}
        nodes = [helper.make_node("Where", ["pad", "minus_inf", "zero"], ["mask"]),
                 helper.make_node("Add", ["scores", "mask"], ["masked"])]
    nodes.append(helper.make_node(op, ["masked"], ["y"], axis=-1))
    (ours, reference, frac), = compare(graph_model(nodes, feeds, initializers), feeds)
    minus_infinity = np.isneginf(reference) if op == "LogSoftmax" else reference == 0
    assert np.any(minus_infinity)
    if op == "Softmax":
        assert np.all(ours[minus_infinity] == 0)
    else:
        assert np.all(ours[minus_infinity] == -32767 * 2.0**-frac)
    finite = ~minus_infinity
    assert np.max(np.abs(ours[finite] - reference[finite])) <= 0.501 * 2.0**-frac + 1e-6


def test_constant_of_shape_filled_with_minus_inf_masks_a_softmax_through_trilu():
    feeds = {"scores": rand(2, 4, 4, scale=3.0)}
    fill = helper.make_tensor("fill", TensorProto.FLOAT, [1], [-np.inf])
    nodes = [helper.make_node("Shape", ["scores"], ["shape"]),
             helper.make_node("Slice", ["shape", "one", "three"], ["square"]),
             helper.make_node("ConstantOfShape", ["square"], ["full"], value=fill),
             helper.make_node("Trilu", ["full", "one_scalar"], ["causal"], upper=1),
             helper.make_node("Add", ["scores", "causal"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["y"], axis=-1)]
    initializers = {"one": np.array([1], np.int64), "three": np.array([3], np.int64), "one_scalar": np.array(1, np.int64)}
    model = graph_model(nodes, feeds, initializers, opset=14, dynamic_batch=True)
    (ours, reference, frac), = compare(model, feeds)
    assert np.all(ours[reference == 0] == 0) and np.any(reference == 0)
    assert np.max(np.abs(ours - reference)) <= 0.501 * 2.0**-frac + 1e-6


@pytest.mark.parametrize("op", ["IsNaN", "IsInf"])
def test_float_predicates_no_integer_satisfies_are_false_everywhere(op):
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], op,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.BOOL, [None, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = {"x": np.random.default_rng(4).normal(0, 100, (3, 5)).astype(np.float32)}
    fixed = InferenceSession(compile_model(model, calibration=x)).run(None, x)[0]
    assert fixed.shape == (3, 5) and np.array_equal(fixed, ort_run(model, x)[0]) and not fixed.any()
