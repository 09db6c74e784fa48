"""Every GEMM/conv fast path with its fused epilogue (bias, requantize, Relu), and the fast element-wise
sums (Add, Sum: fewer passes, in place) and per-channel affine maps (BatchNormalization), equal the reference
path bit for bit, at the edges of the activation range too, and the path the compiler records is the one the run
takes (what `vinfer inspect` shows)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier.feeds import integer_feeds
from verifier.fixedpoint import qmax

RNG = np.random.default_rng(7)


def _model(nodes, x_shape, initializers):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"o{i}" for i in range(len(x_shape))])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _with_relu(op_node):
    return [op_node, helper.make_node("Relu", ["z"], ["y"])]


CASES = {
    "gemm": (lambda: _model(_with_relu(helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1)), (8, 32),
                            {"w": RNG.normal(0, 0.3, (16, 32)), "b": RNG.normal(0, 0.5, 16)}), (8, 32)),
    "matmul": (lambda: _model(_with_relu(helper.make_node("MatMul", ["x", "w"], ["z"])), (2, 8, 32),
                              {"w": RNG.normal(0, 0.3, (32, 16))}), (2, 8, 32)),
    "conv_im2col": (lambda: _model(_with_relu(helper.make_node("Conv", ["x", "w", "b"], ["z"], pads=[1, 1, 1, 1],
                                                               strides=[2, 2])), (2, 3, 9, 9),
                                   {"w": RNG.normal(0, 0.3, (4, 3, 3, 3)), "b": RNG.normal(0, 0.5, 4)}), (2, 3, 9, 9)),
    "conv_depthwise": (lambda: _model(_with_relu(helper.make_node("Conv", ["x", "w"], ["z"], group=4, pads=[1, 1, 1, 1])),
                                      (1, 4, 8, 8), {"w": RNG.normal(0, 0.3, (4, 1, 3, 3))}), (1, 4, 8, 8)),
    "conv_winograd": (lambda: _model(_with_relu(helper.make_node("Conv", ["x", "w", "b"], ["z"], pads=[1, 1, 1, 1])),
                                     (1, 64, 16, 16), {"w": RNG.normal(0, 0.05, (64, 64, 3, 3)),
                                                       "b": RNG.normal(0, 0.5, 64)}), (1, 64, 16, 16)),
    "gemm_runtime_c": (lambda: _model([helper.make_node("Sigmoid", ["x"], ["s"]),
                                       helper.make_node("Gemm", ["x", "w", "s"], ["z"]),
                                       helper.make_node("Relu", ["z"], ["y"])], (8, 16), {"w": RNG.normal(0, 0.3, (16, 16))}),
                       (8, 16)),
    "add": (lambda: _model([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Add", ["x", "s"], ["z"]),
                            helper.make_node("Relu", ["z"], ["y"])], (4, 64), {}), (4, 64)),
    "sum": (lambda: _model([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Sum", ["x", "s", "x", "c"], ["z"]),
                            helper.make_node("Relu", ["z"], ["y"])], (4, 64), {"c": RNG.normal(0, 3, 64)}), (4, 64)),
    # a per-channel affine map nothing can absorb (after a Sigmoid), with the Mul and Add after it folded in
    "batchnorm": (lambda: _model([helper.make_node("Sigmoid", ["x"], ["s"]),
                                  helper.make_node("BatchNormalization", ["s", "g", "b", "m", "v"], ["n"]),
                                  helper.make_node("Mul", ["n", "scale"], ["a"]), helper.make_node("Add", ["shift", "a"], ["z"]),
                                  helper.make_node("Relu", ["z"], ["y"])], (2, 6, 5, 5),
                                 {"g": RNG.normal(1, 0.5, 6), "b": RNG.normal(0, 0.5, 6), "m": RNG.normal(0.5, 0.1, 6),
                                  "v": RNG.uniform(0.01, 0.1, 6), "scale": RNG.normal(0, 2, (6, 1, 1)),
                                  "shift": RNG.normal(0, 1, (1, 6, 1, 1))}), (2, 6, 5, 5)),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def compiled(request):
    build, shape = CASES[request.param]
    calibration = {"x": RNG.uniform(-2, 2, (4 * shape[0],) + shape[1:]).astype(np.float32)}
    return request.param, compile_model(build(), calibration=calibration), shape


def test_relu_is_fused_into_the_op_that_applies_it_in_its_epilogue(compiled):
    _, program, _ = compiled
    last = program.nodes[-1]
    assert last.op in ("Gemm", "MatMul", "Conv", "Add", "Sum", "BatchNormalization") and last.attrs.get("relu") == 1


@pytest.mark.parametrize("values", ["random", "edges"])
def test_fast_path_with_fused_epilogue_equals_the_reference_bit_for_bit(compiled, values):
    _, program, shape = compiled
    limit = qmax(16)
    if values == "random":
        x = RNG.integers(-limit, limit + 1, shape)
    else:  # the ends of the 16-bit range and zero, where rounding and saturation are decided
        x = RNG.choice([-limit, limit, 0, -1, 1, limit - 1, -limit + 1], shape)
    feeds = {"x": x.astype(np.int64)}
    from verifier.interpreter import execute, forced_path

    with forced_path("fast"):
        fast = execute(program, feeds)
    with forced_path("reference"):
        reference = execute(program, feeds)
    assert np.array_equal(fast["y"], reference["y"]) and fast["y"].min() >= 0


def test_recorded_path_names_the_algorithm_the_run_takes(compiled):
    name, program, _ = compiled
    expected = {"conv_im2col": "im2col", "conv_depthwise": "depthwise", "conv_winograd": "Winograd"}.get(name)
    if expected:
        assert expected in program.nodes[0].attrs["path_reason"]


def test_session_run_matches_float_relu_output(compiled):
    _, program, shape = compiled
    x = RNG.uniform(-2, 2, shape).astype(np.float32)
    out = InferenceSession(program).run(None, {"x": x})[0]
    assert out.min() >= 0 and np.isfinite(out).all() and integer_feeds(program, {"x": x})["x"].shape == shape


@pytest.mark.parametrize("c_shape", [(), (1,), (6,), (1, 6), (5, 6), (5, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_gemm_with_a_constant_c_of_any_broadcastable_shape_runs_fast_as_the_reference(c_shape, relu):
    """A per-output C is fused into the product; a scalar one too (broadcast); a matrix or a column C is
    not per output channel and takes the unfused epilogue. All equal the reference, and onnxruntime."""
    import onnxruntime as ort

    from verifier.interpreter import forced_path

    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y" if not relu else "z"])] + (
        [helper.make_node("Relu", ["z"], ["y"])] if relu else [])
    model = _model(nodes, (5, 4), {"w": RNG.normal(0, 0.5, (4, 6)), "c": RNG.normal(0, 0.5, c_shape)})
    x = RNG.normal(0, 1, (5, 4)).astype(np.float32)
    session = InferenceSession(compile_model(model, calibration={"x": x}))
    with forced_path("reference"):
        reference = session.run_fixed({"x": x})
    assert session.run_fixed({"x": x}).commitment == reference.commitment
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(session.run(None, {"x": x})[0], expected, atol=1e-3)


@pytest.mark.parametrize("value", [40000, -(1 << 40), 1 << 41, -(1 << 42), 1 << 50, -(1 << 62)])
def test_a_sum_of_values_beyond_16_bits_behaves_as_the_reference_errors_included(value):
    """Around the headroom limit of a 20-bit shift (2**42) and at the int64 edge."""
    from verifier.interpreter import forced_path
    from verifier.ops._binary import run_sum

    attrs = {"signs": [1, -1], "shifts": [0, 20], "acc_frac": 30, "out_frac": 10, "relu": 1}
    inputs = [np.array([1, -5, 7], np.int64), np.array([value, 3, -3], np.int64)]
    results = []
    for path in ("fast", "reference"):
        with forced_path(path):
            try:
                results.append(("ok", run_sum(inputs, attrs, {})[0].tolist()))
            except Exception as exc:  # noqa: BLE001 - the two paths must fail alike
                results.append(("error", type(exc).__name__))
    assert results[0] == results[1]
