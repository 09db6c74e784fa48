"""Each non-linear op, compiled from a single-node ONNX model, matches onnxruntime within its stated bound
(docs/fixed-point-nonlinear.md), in units of the output step 2**-f_out.

Test inputs are put on the program's input grid first, so the comparison measures the op's own error
(the input's quantization is the previous op's business). onnxruntime's own float32 error is allowed on
top: 4 float32 ulps of the reference value. Inputs include both ends of the representable range (the
saturation edges) and zero."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError
from verifier.fixedpoint import qmax

Q = qmax(16)
F32_ULP = 2.0**-23


def single_node_model(op, shape, attrs=None, consts=None, opset=17, n_inputs=1, domain_opset=None):
    """A model with one `op` node; float inputs x0..x{n-1} of `shape`, then constant inputs `consts`."""
    consts = consts or []
    names = [f"x{i}" for i in range(n_inputs)]
    initializers = []
    for i, value in enumerate(consts):
        name = f"k{i}"
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        names.append(name)
    node = helper.make_node(op, names, ["y"], name=f"{op.lower()}_node", **(attrs or {}))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape) for i in range(n_inputs)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_both(model, calibration, feeds):
    """(ours as float64 at the output scale in steps, onnxruntime's float64 in steps, f_out)."""
    program = compile_model(model, calibration=calibration)
    feeds = {k: _on_grid(v, program.inputs[i].frac) for i, (k, v) in enumerate(feeds.items())}
    ours = InferenceSession(program).run_fixed(feeds).outputs["y"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = session.run(None, feeds)[0].astype(np.float64)
    f_out = program.outputs[0].frac
    return ours.astype(np.float64), reference * 2.0**f_out, f_out


def assert_within(ours, reference_steps, bound_steps):
    """|ours - reference| <= bound (+ onnxruntime's float32 error); where the reference is beyond the
    16-bit range the output must be saturated."""
    finite = np.isfinite(reference_steps)
    inside = finite & (np.abs(reference_steps) <= Q)
    allowed = np.broadcast_to(bound_steps, reference_steps.shape) + 4 * F32_ULP * np.abs(reference_steps)
    err = np.abs(ours - reference_steps)
    assert np.all(err[inside] <= allowed[inside]), f"max error {err[inside].max():.4f} steps"
    outside = finite & ~inside
    assert np.all(ours[outside] == np.sign(reference_steps[outside]) * Q)


def _on_grid(x, frac):
    return (np.round(np.asarray(x, np.float64) * 2.0**frac) * 2.0**-frac).astype(np.float32)


def inputs_with_edges(scale, shape=(4, 257), seed=0):
    """Random values in [-scale, scale] plus the ends of the input range and zero (calibration = same)."""
    x = np.random.default_rng(seed).uniform(-scale, scale, shape).astype(np.float32)
    x.flat[:3] = [-scale, scale, 0.0]
    return x


TABLE_OPS = [
    ("Sigmoid", {}, 8.0), ("Tanh", {}, 4.0), ("Erf", {}, 3.0), ("Exp", {}, 3.0),
    ("Softsign", {}, 8.0), ("Softplus", {}, 8.0), ("HardSwish", {}, 6.0), ("Mish", {}, 6.0),
    ("Elu", {"alpha": 0.7}, 4.0), ("Selu", {}, 4.0), ("Celu", {"alpha": 1.5}, 4.0),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 5.0), ("ThresholdedRelu", {"alpha": 0.8}, 3.0),
    ("Shrink", {"lambd": 0.6}, 3.0), ("Shrink", {"lambd": 0.6, "bias": 0.6}, 3.0),
    ("Sin", {}, 8.0), ("Cos", {}, 8.0), ("Tan", {}, 1.4), ("Atan", {}, 8.0), ("Sinh", {}, 4.0), ("Cosh", {}, 4.0),
    ("Asinh", {}, 8.0), ("Asin", {}, 0.99), ("Acos", {}, 0.99), ("Atanh", {}, 0.99),
]


@pytest.mark.parametrize("op,attrs,scale", TABLE_OPS, ids=[f"{o}-{a}" for o, a, _ in TABLE_OPS])
def test_table_op_is_within_half_an_output_step_of_onnxruntime(op, attrs, scale):
    x = inputs_with_edges(scale)
    opset = 18 if op == "Mish" else 17
    ours, reference, _ = run_both(single_node_model(op, [4, 257], attrs, opset=opset), {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_opset_20_is_within_half_an_output_step(approximate):
    x = inputs_with_edges(6.0)
    model = single_node_model("Gelu", [4, 257], {"approximate": approximate}, opset=20)
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.5)


@pytest.mark.parametrize("op,low", [("Log", 0.05), ("Sqrt", 0.05), ("Reciprocal", 0.05), ("Acosh", 1.0)])
def test_positive_domain_op_is_within_half_an_output_step(op, low):
    x = np.abs(inputs_with_edges(4.0)) + low
    ours, reference, _ = run_both(single_node_model(op, [4, 257]), {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.5)


def test_log_of_zero_saturates_and_of_a_negative_gives_zero():
    x = np.abs(inputs_with_edges(4.0)) + 0.05
    program = compile_model(single_node_model("Log", [4, 257]), calibration={"x0": x})
    probe = np.full((4, 257), 1.0, np.float32)
    probe[0, :2] = [0.0, -1.0]
    y = InferenceSession(program).run_fixed({"x0": probe}).outputs["y"]
    assert y[0, 0] == -Q and y[0, 1] == 0


@pytest.mark.parametrize("p", [2.0, 3.0, 0.5, -1.0, 1.5])
def test_pow_with_constant_exponent_is_within_half_an_output_step(p):
    x = np.abs(inputs_with_edges(3.0)) + 0.1 if p != int(p) or p < 0 else inputs_with_edges(3.0)
    model = single_node_model("Pow", [4, 257], consts=[np.array(p, np.float32)])
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.5)


def test_pow_with_run_time_exponent_is_within_half_a_step_plus_its_relative_error():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 3.0, (4, 257)).astype(np.float32)
    base[0, :4] = [-2.0, -1.5, 0.0, 3.0]
    exponent = rng.uniform(-2.0, 2.5, (4, 257)).astype(np.float32)
    exponent[0, :4] = [3.0, 2.0, 1.5, 2.5]
    model = single_node_model("Pow", [4, 257], n_inputs=2)
    ours, reference, _ = run_both(model, {"x0": base, "x1": exponent}, {"x0": base, "x1": exponent})
    assert_within(ours, reference, 0.5 + np.abs(reference) * (3e-8 + 1e-8 * 2.5))
    assert ours[0, 0] < 0 and ours[0, 1] > 0  # (-2)**3 < 0, (-1.5)**2 > 0


def test_pow_of_a_plain_integer_base_is_unsupported_naming_the_node():
    node = helper.make_node("Pow", ["x", "p"], ["y"], name="int_pow")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [3]),
                                            helper.make_tensor_value_info("p", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match="int_pow"):
        compile_model(model, calibration={"x": np.ones(3, np.int64), "p": np.ones(3, np.float32)})


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_on_any_axis_is_within_0_501_output_steps(axis):
    x = inputs_with_edges(6.0, shape=(5, 7, 33))
    ours, reference, f_out = run_both(single_node_model("Softmax", [5, 7, 33], {"axis": axis}), {"x0": x}, {"x0": x})
    assert f_out == 14
    assert_within(ours, reference, 0.501)


def test_softmax_opset_11_flattens_at_axis():
    x = inputs_with_edges(4.0, shape=(3, 4, 5))
    model = single_node_model("Softmax", [3, 4, 5], {"axis": 1}, opset=11)
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.501)


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_is_within_0_501_output_steps(axis):
    x = inputs_with_edges(6.0, shape=(6, 40))
    ours, reference, _ = run_both(single_node_model("LogSoftmax", [6, 40], {"axis": axis}), {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.501)


@pytest.mark.parametrize("shape,axis", [((4, 10, 64), -1), ((2, 3, 8, 8), 1), ((6, 768), -1)])
def test_layer_normalization_is_within_0_51_steps_of_onnxruntime_on_the_quantized_weights(shape, axis):
    rng = np.random.default_rng(len(shape))
    norm_shape = shape[axis % len(shape):]
    scale = rng.uniform(0.5, 2.0, norm_shape).astype(np.float32)
    bias = rng.uniform(-1, 1, norm_shape).astype(np.float32)
    x = (rng.normal(0, 2, shape) + rng.normal(0, 3, shape[:1] + (1,) * (len(shape) - 1))).astype(np.float32)
    model = single_node_model("LayerNormalization", list(shape), {"axis": axis, "epsilon": 1e-5},
                              consts=[scale, bias])
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    # scale at 20 bits: its quantization adds |z| * |dgamma| <= sqrt(N) * 2**-20 * max|scale| (in real units)
    gamma_step = 2.0 ** -(20 - 1 - int(np.ceil(np.log2(scale.max() + 1e-9))))
    program_out = compile_model(model, calibration={"x0": x}).outputs[0].frac
    extra = np.sqrt(np.prod(norm_shape)) * gamma_step / 2 * 2.0**program_out
    assert_within(ours, reference, 0.51 + extra)


@pytest.mark.parametrize("size,bias", [(5, 1.0), (3, 2.0), (7, 0.5), (1, 1.0)])
def test_lrn_is_within_0_51_output_steps_of_onnxruntime(size, bias):
    x = inputs_with_edges(3.0, shape=(2, 9, 5, 5))
    model = single_node_model("LRN", [2, 9, 5, 5], {"size": size, "alpha": 0.3, "beta": 0.75, "bias": bias})
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.51)


@pytest.mark.parametrize("shape", [(2, 9, 5, 5), (1, 6, 1, 3), (1, 12, 7, 1)])
@pytest.mark.parametrize("size,alpha,beta,bias", [(5, 1e-4, 0.75, 1.0), (3, 0.3, 0.75, 2.0), (1, 2.0, 0.6, 0.5),
                                                  (7, 50.0, 1.5, 0.01), (13, 0.3, 0.25, 1.0)])
@pytest.mark.parametrize("run_size,run_shift", [(None, None), (4, None), (None, 0)])
def test_lrn_compiled_loop_equals_the_numpy_form(shape, size, alpha, beta, bias, run_size, run_shift):
    """The fast path (kernels.loops.lrn: window sums, integer log2 / exp2 per value) gives the numpy form's
    integers, at the 16-bit edges and for windows wider than the channels; run_size 4 runs the compiled node
    with an even window (onnxruntime, the calibration, takes odd ones only), run_shift 0 with an unshifted
    sum (coarse inputs: alexnet's second LRN)."""
    from verifier.interpreter import forced_path
    from verifier.ops.lrn import LRN

    model = single_node_model("LRN", list(shape), {"size": size, "alpha": alpha, "beta": beta, "bias": bias})
    node = compile_model(model, calibration={"x0": inputs_with_edges(3.0, shape=shape)}).nodes[0]
    attrs = dict(node.attrs, size=run_size or size)
    if run_shift is not None:
        attrs.update(shift=run_shift, multiplier=attrs["multiplier"] >> min(attrs["shift"], 30))
    rng = np.random.default_rng(size + shape[1])
    x = rng.integers(-qmax(16), qmax(16) + 1, (2,) + shape[1:])
    x.reshape(-1)[:5] = [qmax(16), -qmax(16), 0, 1, -1]
    x.reshape(2, shape[1], -1)[1, :, 0] = qmax(16)  # a window of all-maximal values: the largest t
    with forced_path("reference"):
        expected = LRN.run([x], attrs, {})[0]
    with forced_path("fast"):
        assert np.array_equal(LRN.run([x], attrs, {})[0], expected)


def test_lrn_loop_leaves_shifts_and_values_out_of_its_range_to_the_numpy_form():
    from verifier.kernels import loops
    from verifier.nonlinear.exp_log import spec_constants

    c = spec_constants()
    tables = (c["log2"], c["exp2_hi"], c["exp2_mid"], c["exp2_lo"])
    x, out = np.ones((1, 3, 4), dtype=np.int64), np.zeros((1, 3, 4), dtype=np.int64)
    for shift, out_shift, bias_q in ((-1, 30, 1 << 40), (64, 30, 1 << 40), (20, 0, 1 << 40), (20, 30, 1 << 62)):
        assert not loops.lrn(x, 3, 5, shift, bias_q, 40, -3, 2, 40, out_shift, 32767, tables, np.empty(4, np.int64),
                             out)  # (the last: t past INT64_SAFE, which only a hostile program's constants give)
    assert not out.any()


def test_div_by_a_run_time_tensor_is_correctly_rounded():
    a = inputs_with_edges(4.0, seed=1)
    b = inputs_with_edges(4.0, seed=2)
    b[np.abs(b) < 0.25] = 0.25
    model = single_node_model("Div", [4, 257], n_inputs=2)
    ours, reference, _ = run_both(model, {"x0": a, "x1": b}, {"x0": a, "x1": b})
    assert_within(ours, reference, 0.5)


def test_div_by_zero_tensor_saturates_by_the_sign_of_the_numerator():
    a = inputs_with_edges(4.0, seed=1)
    b = inputs_with_edges(4.0, seed=2)
    program = compile_model(single_node_model("Div", [4, 257], n_inputs=2), calibration={"x0": a, "x1": b})
    num = np.zeros((4, 257), np.float32)
    num[0, :3] = [1.0, -1.0, 0.0]
    y = InferenceSession(program).run_fixed({"x0": num, "x1": np.zeros((4, 257), np.float32)}).outputs["y"]
    assert list(y[0, :3]) == [Q, -Q, 0]


@pytest.mark.parametrize("op,attrs,consts,shape", [
    ("Softmax", {"axis": -1}, [], (3, 50)),
    ("LayerNormalization", {}, [np.ones(50, np.float32), np.zeros(50, np.float32)], (3, 50)),
    ("LRN", {"size": 3}, [], (1, 6, 4, 4)),
    ("Tanh", {}, [], (3, 50)),
])
def test_same_program_and_input_give_the_same_commitment_twice(op, attrs, consts, shape):
    x = inputs_with_edges(5.0, shape=shape)
    program = compile_model(single_node_model(op, list(shape), attrs, consts), calibration={"x0": x})
    again = compile_model(single_node_model(op, list(shape), attrs, consts), calibration={"x0": x})
    assert program.hash == again.hash
    first = InferenceSession(program).run_fixed({"x0": x}).commitment
    assert InferenceSession(again).run_fixed({"x0": x}).commitment == first


def test_layer_normalization_with_run_time_scale_bias_and_mean_inv_std_outputs_matches_onnxruntime():
    rng = np.random.default_rng(3)
    shape = [3, 4, 16]
    x = rng.normal(1.0, 2.0, shape).astype(np.float32)
    scale, bias = rng.uniform(0.5, 2, 16).astype(np.float32), rng.uniform(-1, 1, 16).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv_std"], name="ln", axis=-1)
    info = lambda name, dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)  # noqa: E731
    graph = helper.make_graph([node], "g", [info("x", shape), info("s", [16]), info("b", [16])],
                              [info("y", shape), info("mean", [3, 4, 1]), info("inv_std", [3, 4, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": x, "s": scale, "b": bias}
    program = compile_model(model, calibration=feeds)
    feeds = {k: _on_grid(v, info.frac) for (k, v), info in zip(feeds.items(), program.inputs)}
    ours = InferenceSession(program).run_fixed(feeds).outputs
    reference = dict(zip(["y", "mean", "inv_std"], ort.InferenceSession(model.SerializeToString()).run(None, feeds)))
    for out in program.outputs:
        steps = reference[out.name].astype(np.float64) * 2.0**out.frac
        assert_within(ours[out.name].astype(np.float64), steps, 0.51)


def test_div_of_a_constant_by_a_run_time_tensor_is_correctly_rounded():
    x = np.abs(inputs_with_edges(4.0)) + 0.1
    model = single_node_model("Div", [4, 257], consts=[np.array(1.5, np.float32)])
    model.graph.node[0].input[:] = ["k0", "x0"]  # 1.5 / x
    ours, reference, _ = run_both(model, {"x0": x}, {"x0": x})
    assert_within(ours, reference, 0.5)
