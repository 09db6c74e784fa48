"""Ops ONNX defines as functions of other ops, which the compiler expands into their bodies for the model's
opset (verifier/compiler/functions.py) - RMSNormalization, Attention and RotaryEmbedding (opset 23),
GroupNormalization, MeanVarianceNormalization, Swish - compile, run the inlined ops, and match
onnxruntime's own kernels for the op; an op without a function or a lowering is still refused by name."""

import numpy as np
import pytest
from onnx import helper

from test_ops_coverage import graph_model, rand
from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError
from verifier_helpers import ort_run

rng = np.random.default_rng(0)
Q, K, V = (rng.standard_normal((2, 4, 6, 8)).astype(np.float32) for _ in range(3))
ANGLES = rng.standard_normal((6, 4)).astype(np.float32)

CASES = {
    "RMSNormalization": (23, helper.make_node("RMSNormalization", ["x", "s"], ["y"], epsilon=1e-5),
                         {"x": rand(2, 4, 8)}, {"s": rng.uniform(0.5, 1.5, 8).astype(np.float32)}),
    "Attention causal": (23, helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1),
                         {"q": Q, "k": K, "v": V}, {}),
    "Attention masked": (23, helper.make_node("Attention", ["q", "k", "v", "m"], ["y"]),
                         {"q": Q, "k": K, "v": V, "m": rng.integers(0, 2, (6, 6)).astype(bool)}, {}),
    "RotaryEmbedding": (23, helper.make_node("RotaryEmbedding", ["q", "cos", "sin", "positions"], ["y"]),
                        {"q": Q, "positions": np.tile(np.arange(6), (2, 1)).astype(np.int64)},
                        {"cos": np.cos(ANGLES), "sin": np.sin(ANGLES)}),
    "GroupNormalization": (21, helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3),
                           {"x": rand(2, 6, 5, 5)}, {"s": rng.uniform(0.5, 1.5, 6).astype(np.float32),
                                                     "b": rng.standard_normal(6).astype(np.float32)}),
    "MeanVarianceNormalization": (13, helper.make_node("MeanVarianceNormalization", ["x"], ["y"]),
                                  {"x": rand(2, 6, 5, 5)}, {}),
    "Swish": (24, helper.make_node("Swish", ["x"], ["y"], alpha=1.5), {"x": rand(4, 16)}, {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_function_op_is_expanded_and_matches_onnxruntime(name):
    opset, node, feeds, initializers = CASES[name]
    model = graph_model([node], feeds, initializers, opset=opset)
    program = compile_model(model, calibration=feeds)
    assert node.op_type not in {n.op for n in program.nodes}  # (its body's ops run instead)
    fixed, reference = InferenceSession(program).run(None, feeds)[0], ort_run(model, feeds)[0]
    assert fixed.shape == reference.shape
    assert np.max(np.abs(fixed - reference)) <= 0.002 * max(np.max(np.abs(reference)), 1.0)
    fast = InferenceSession(program, path="fast").run_fixed(feeds).commitment
    assert fast == InferenceSession(program, path="reference").run_fixed(feeds).commitment


def test_an_op_without_a_function_or_lowering_is_still_refused_by_name():
    model = graph_model([helper.make_node("Det", ["x"], ["y"])], {"x": rand(3, 3)}, opset=13)
    with pytest.raises(UnsupportedOpError, match="'Det'"):
        compile_model(model, calibration={"x": rand(3, 3)})
