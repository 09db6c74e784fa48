"""Loops and scans of known length are unrolled at compile time (compiler/unroll.py): nn.EmbeddingBag as both
torch exporters write it (a counted Loop; a conditioned Loop collecting rows in a sequence, with Ifs inside), a
hand-written Loop and Scan with carried and scan outputs, skl2onnx's k-nearest neighbours (a Scan over the
training rows), and the loops that cannot be unrolled, refused by name before calibration."""

import io
import logging
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from verifier import InferenceSession, compile_model
from verifier.errors import UnsupportedOpError
from verifier_helpers import ort_run


class BagClassifier(nn.Module):
    """The text classifier of torch's tutorial: an EmbeddingBag's pooled rows into a Linear."""

    def __init__(self, mode):
        super().__init__()
        self.bag = nn.EmbeddingBag(50, 16, mode=mode)
        self.out = nn.Linear(16, 4)

    def forward(self, ids, offsets=None):
        return self.out(self.bag(ids, offsets))


def export(model, args, names, dynamo, dynamic_axes=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.disable(logging.WARNING)
            try:
                return torch.onnx.export(model, args, dynamo=True, verbose=False, input_names=names).model_proto
            finally:
                logging.disable(logging.NOTSET)
        buffer = io.BytesIO()
        torch.onnx.export(model, args, buffer, dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes=dynamic_axes)
        return onnx.load_from_string(buffer.getvalue())


def assert_matches(model, calibration, feeds_list):
    session = InferenceSession(compile_model(model, calibration=calibration))
    for feeds in feeds_list:
        ours, reference = session.run(None, feeds)[0], ort_run(model, feeds)[0]
        assert ours.shape == reference.shape
        assert np.max(np.abs(ours - reference)) <= 0.01 * np.max(np.abs(reference))


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
@pytest.mark.parametrize("dynamo", [False, True])
def test_embedding_bag_of_fixed_length_bags_matches(mode, dynamo):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (3, 7))
    model = export(BagClassifier(mode).eval(), (torch.from_numpy(ids),), ["ids"], dynamo)
    assert "Loop" in {node.op_type for node in model.graph.node}
    assert_matches(model, {"ids": rng.integers(0, 50, (3, 7))}, [{"ids": ids}, {"ids": rng.integers(0, 50, (3, 7))}])


def test_embedding_bag_with_run_time_offsets_matches():
    """The torchscript export slices each bag at run-time offsets: unrolled over the (static) bag count, the
    slices' bounds stay run-time values, and bags of other lengths give onnxruntime's rows."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    ids, offsets = rng.integers(0, 50, 20), np.array([0, 5, 12])
    model = export(BagClassifier("mean").eval(), (torch.from_numpy(ids), torch.from_numpy(offsets)),
                   ["ids", "offsets"], dynamo=False)
    assert_matches(model, {"ids": ids, "offsets": offsets},
                   [{"ids": rng.integers(0, 50, 20), "offsets": np.array(bounds)}
                    for bounds in ([0, 5, 12], [0, 1, 19], [0, 10, 11])])


def loop_model(trips, condition_body=False, run_time_trips=False):
    """y = x; for i < trips: y = y * 0.5 + i, scanning each y: outputs (final y, the stacked ys)."""
    body_nodes = [
        helper.make_node("Cast", ["i"], ["i_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["y_in", "half"], ["halved"]),
        helper.make_node("Add", ["halved", "i_float"], ["y_out"]),
        helper.make_node("Identity", ["y_out"], ["scanned"]),
    ]
    if condition_body:  # go on while the values stay below 3: a run-time condition
        body_nodes += [helper.make_node("ReduceMax", ["y_out"], ["top"], keepdims=0),
                       helper.make_node("Less", ["top", "three"], ["cond_out"])]
    else:
        body_nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_in", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("scanned", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "half"), numpy_helper.from_array(np.array(3.0, np.float32), "three")])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    initializers = [numpy_helper.from_array(np.array(True), "go")]
    if run_time_trips:
        inputs.append(helper.make_tensor_value_info("trips", TensorProto.INT64, []))
    else:
        initializers.append(numpy_helper.from_array(np.array(trips, np.int64), "trips"))
    graph = helper.make_graph([helper.make_node("Loop", ["trips", "go", "x"], ["y", "ys"], body=body, name="loop")],
                              "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
                                            helper.make_tensor_value_info("ys", TensorProto.FLOAT, [None, 2, 3])],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_counted_loop_with_carried_and_scan_outputs_matches():
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3)).astype(np.float32)
    model = loop_model(5)
    session = InferenceSession(compile_model(model, calibration={"x": x}))
    assert "Loop" not in {node.op for node in session.program.nodes}
    ours, reference = session.run(None, {"x": x}), ort_run(model, {"x": x})
    assert ours[1].shape == reference[1].shape == (5, 2, 3)
    for mine, theirs in zip(ours, reference):
        assert np.max(np.abs(mine - theirs)) <= 2e-3


def test_a_loop_that_runs_no_iteration_passes_its_initial_values_on():
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3)).astype(np.float32)
    model = loop_model(0)
    del model.graph.output[1]
    model.graph.node[0].output[1] = ""
    y = InferenceSession(compile_model(model, calibration={"x": x})).run(None, {"x": x})[0]
    assert np.max(np.abs(y - x)) <= 2.0**-14


@pytest.mark.parametrize("model, reason", [
    (loop_model(5, condition_body=True), "its condition depends on run-time values"),
    (loop_model(5, run_time_trips=True), "its trip count is only known at run time"),
    (loop_model(5000), "past the 4096 iterations"),
])
def test_loops_that_cannot_be_unrolled_are_refused_by_name(model, reason):
    calibration = {"x": np.ones((2, 3), np.float32)}
    if any(i.name == "trips" for i in model.graph.input):
        calibration["trips"] = np.array(5, np.int64)
    with pytest.raises(UnsupportedOpError, match=f"'Loop' at node 'loop'.*{reason}"):
        compile_model(model, calibration=calibration)


def test_an_embedding_bag_exported_with_a_dynamic_batch_is_refused_by_name():
    """The bag count comes from the input's run-time shape: no known length to unroll."""
    torch.manual_seed(0)
    ids = np.random.default_rng(4).integers(0, 50, (3, 7))
    model = export(BagClassifier("mean").eval(), (torch.from_numpy(ids),), ["ids"], dynamo=False,
                   dynamic_axes={"ids": {0: "batch"}})
    with pytest.raises(UnsupportedOpError, match="'Loop'.*trip count is only known at run time"):
        compile_model(model, calibration={"ids": ids})


def scan_model(length="T"):
    """A running sum over axis 1 of x (a carried state) scanned forward, with a second input scanned in
    reverse, and the per-step products stacked on axis 1 (scan_output_axes)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["total_in", "x_t"], ["total_out"]),
         helper.make_node("Mul", ["total_out", "w_t"], ["step"])], "body",
        [helper.make_tensor_value_info("total_in", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("w_t", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("total_out", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("step", TensorProto.FLOAT, [2, 3])])
    scan = helper.make_node("Scan", ["start", "x", "w"], ["total", "steps"], body=body, num_scan_inputs=2,
                            scan_input_axes=[1, 0], scan_input_directions=[0, 1], scan_output_axes=[1], name="scan")
    graph = helper.make_graph(
        [scan], "g", [helper.make_tensor_value_info("start", TensorProto.FLOAT, [2, 3]),
                      helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, length, 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("steps", TensorProto.FLOAT, [2, length, 3])],
        [numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_scan_with_state_reverse_input_and_output_axis_matches():
    rng = np.random.default_rng(5)
    feeds = {"start": rng.uniform(-1, 1, (2, 3)).astype(np.float32), "x": rng.uniform(-1, 1, (2, 4, 3)).astype(np.float32)}
    model = scan_model(4)
    session = InferenceSession(compile_model(model, calibration=feeds))
    ours, reference = session.run(None, feeds), ort_run(model, feeds)
    assert ours[1].shape == reference[1].shape == (2, 4, 3)
    for mine, theirs in zip(ours, reference):
        assert np.max(np.abs(mine - theirs)) <= 2e-3


def test_a_scan_of_run_time_length_is_refused_by_name():
    feeds = {"start": np.zeros((2, 3), np.float32), "x": np.zeros((2, 4, 3), np.float32)}
    with pytest.raises(UnsupportedOpError, match="'Scan' at node 'scan'.*scanned length is only known at run time"):
        compile_model(scan_model(), calibration=feeds)


def test_k_nearest_neighbors_from_skl2onnx_match():
    """skl2onnx computes the distances to the training rows in a Scan over them (unrolled: one copy per
    row) then takes the TopK. On inputs on the program's grid the labels agree with onnxruntime's except where
    two neighbours' distances differ by less than their 16-bit rounding; on iris that is none of them."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier

    features, labels = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(features))
    features, labels = features[order].astype(np.float32), labels[order]
    model = KNeighborsClassifier().fit(features[:100], labels[:100])
    onnx_model = to_onnx(model, features[:1], options={id(model): {"zipmap": False}})
    assert "Scan" in {node.op_type for node in onnx_model.graph.node}
    program = compile_model(onnx_model, calibration={"X": features[:100]})
    step = program.inputs[0].steps()
    test = {"X": (np.round(features[100:] / step) * step).astype(np.float32)}
    assert np.array_equal(InferenceSession(program).run(None, test)[0], ort_run(onnx_model, test)[0])
