"""compiler/batchnorm.py: per-channel affine maps - BatchNormalization, and Mul / Div / Add / Sub by a constant
that is one value per channel or a single value - fold into the Conv, Gemm or BatchNormalization before them
(the Caffe2 "Scale" layer after every BatchNorm of light_densenet121 and light_inception_v2). The folded
program has fewer nodes and still matches onnxruntime; maps that are not per channel stay where they are."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError

RNG = np.random.default_rng(11)


def _model(nodes, x_shape, initializers):
    rank = [f"d{i}" for i in range(len(x_shape))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, rank)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _bn(source, out, channels, prefix="bn"):
    params = {f"{prefix}_g": RNG.normal(1, 0.3, channels), f"{prefix}_b": RNG.normal(0, 0.3, channels),
              f"{prefix}_m": RNG.normal(0, 0.3, channels), f"{prefix}_v": RNG.uniform(0.5, 2, channels)}
    return helper.make_node("BatchNormalization", [source, *params], [out]), params


def _compiled_and_checked(model, x_shape, tolerance=2e-3):
    x = RNG.normal(0, 1, x_shape).astype(np.float32)
    samples = RNG.normal(0, 1, (4 * x_shape[0],) + tuple(x_shape[1:])).astype(np.float32)
    program = compile_model(model, calibration={"x": samples})
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"x": x})[0]
    got = InferenceSession(program).run(None, {"x": x})[0]
    assert np.max(np.abs(got - expected)) <= tolerance * max(1.0, float(np.max(np.abs(expected))))
    return [node.op for node in program.nodes]


def test_conv_batchnorm_scale_and_shift_become_one_conv():
    bn, params = _bn("c", "n", 6)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), bn,
             helper.make_node("Mul", ["n", "scale"], ["s"]), helper.make_node("Add", ["shift", "s"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    model = _model(nodes, (2, 3, 7, 7), {"w": RNG.normal(0, 0.3, (6, 3, 3, 3)), **params,
                                          "scale": RNG.normal(0, 2, (6, 1, 1)),
                                          "shift": RNG.normal(0, 1, (1, 6, 1, 1))})
    assert _compiled_and_checked(model, (2, 3, 7, 7)) == ["Conv"]  # (with the Relu fused)


def test_a_batchnorm_after_a_concat_absorbs_the_affine_ops_after_it():
    bn, params = _bn("cat", "n", 4)
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"]), helper.make_node("Tanh", ["x"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["cat"], axis=1), bn,
             helper.make_node("Mul", ["n", "scale"], ["m"]), helper.make_node("Sub", ["m", "offset"], ["d"]),
             helper.make_node("Div", ["d", "two"], ["y"])]
    model = _model(nodes, (3, 2, 5), {**params, "scale": RNG.normal(0, 2, (4, 1)), "offset": RNG.normal(0, 1, (4, 1)),
                                       "two": np.array(2.0)})
    assert _compiled_and_checked(model, (3, 2, 5)) == ["Sigmoid", "Tanh", "Concat", "BatchNormalization"]


def test_a_scale_after_a_gemm_folds_into_its_weights():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Mul", ["g", "gamma"], ["y"])]
    model = _model(nodes, (5, 8), {"w": RNG.normal(0, 0.4, (6, 8)), "b": RNG.normal(0, 0.4, 6),
                                    "gamma": RNG.normal(0, 0.5, 6)})
    assert _compiled_and_checked(model, (5, 8)) == ["Gemm"]


@pytest.mark.parametrize("case", ["spatial constant", "shared output", "run-time scale", "zero divisor",
                                  "graph output"])
def test_maps_that_are_not_per_channel_affine_of_a_private_output_stay(case):
    w = {"w": RNG.normal(0, 0.3, (4, 2, 1, 1))}
    conv = helper.make_node("Conv", ["x", "w"], ["c"])
    if case == "spatial constant":
        nodes, extra = [conv, helper.make_node("Mul", ["c", "k"], ["y"])], {"k": RNG.normal(0, 1, (1, 1, 3, 3))}
    elif case == "shared output":
        nodes, extra = [conv, helper.make_node("Mul", ["c", "k"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"])], {
            "k": RNG.normal(0, 1, (4, 1, 1))}
    elif case == "run-time scale":
        nodes, extra = [conv, helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])], {}
    elif case == "zero divisor":
        nodes, extra = [conv, helper.make_node("Div", ["c", "k"], ["y"])], {
            "k": np.array([1.0, 0.0, 2.0, 1.0]).reshape(4, 1, 1)}
    else:
        nodes, extra = [conv, helper.make_node("Mul", ["c", "k"], ["y"])], {"k": RNG.normal(0, 1, (4, 1, 1))}
    model = _model(nodes, (2, 2, 3, 3), {**w, **extra})
    if case == "graph output":  # the Conv's output is a graph output too: its values must stay unscaled
        model.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", "c", "h", "w"]))
    calibration = {"x": RNG.normal(0, 1, (8, 2, 3, 3)).astype(np.float32)}
    if case == "zero divisor":  # not folded into an infinite weight: refused by name, as any division by zero
        with pytest.raises(UnsupportedOpError, match="Div.*division by zero"):
            compile_model(model, calibration=calibration)
        return
    assert len(compile_model(model, calibration=calibration).nodes) == len(nodes)
    _compiled_and_checked(model, (2, 2, 3, 3))
