"""vinfer compile / run / inspect, through typer's runner on an app holding only this package's commands."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from verifier import InferenceSession
from verifier.cli import register
from verifier_helpers import EXAMPLES

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def compiled(app, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits.vfp"
    result = runner.invoke(app, ["compile", str(EXAMPLES / "digits_cnn.onnx"), "--calibrate",
                                 str(EXAMPLES / "digits_calibration.npz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_compile_writes_the_program_and_prints_its_hash(compiled, example_program):
    path, output = compiled
    assert path.read_bytes() == example_program.to_bytes()
    assert f"program {example_program.hash}" in output


def test_compile_reports_the_error_against_onnxruntime_on_the_calibration_inputs(compiled):
    _, output = compiled
    assert "on 256 calibration inputs, output 'logits' is within" in output
    assert "of onnxruntime float32" in output and "top-1 agreement 100.0%" in output


def test_run_prints_the_commitment_of_the_session(app, compiled, example_inputs):
    path, _ = compiled
    result = runner.invoke(app, ["run", str(path), "--input", str(EXAMPLES / "digits_inputs.npz")])
    assert result.exit_code == 0, result.output
    expected = InferenceSession(str(path)).run_fixed(example_inputs).commitment
    assert f"commitment {expected}" in result.output


def test_run_json_summary_and_output_file(app, compiled, example_inputs, tmp_path):
    path, _ = compiled
    out = tmp_path / "y.npz"
    result = runner.invoke(app, ["run", str(path), "--input", str(EXAMPLES / "digits_inputs.npz"), "--json",
                                 "--output", str(out), "--path", "reference"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    session = InferenceSession(str(path))
    assert summary["commitment"] == session.run_fixed(example_inputs).commitment
    assert summary["program"] == session.program.hash
    with np.load(out) as data:
        assert np.array_equal(data["logits"], session.run(None, example_inputs)[0])


def test_inspect_program_shows_ops_scales_parameters_and_paths(app, compiled):
    path, _ = compiled
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "Conv x2" in result.output and "scale 2^-" in result.output and "parameters" in result.output
    assert "path float" in result.output and "< 2**" in result.output
    assert "output  logits  shape (?, 10)  float32  scale 2^-9  committed as int16" in result.output


def test_inspect_json_says_where_each_epilogue_runs(app, compiled):
    path, _ = compiled
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    products = [n for n in nodes if n["op"].split("+")[0] in ("Conv", "Gemm")]
    assert products and all(n["epilogue"].startswith("fused into the product") for n in products)
    assert not any("epilogue" in n for n in nodes if n["op"].startswith(("MaxPool", "Flatten")))


@pytest.mark.parametrize("setting, expected", [
    ("off", "float here (VINFER_LIMB_PRODUCTS=off"), ("always", "8-bit products of {bits}-bit by 8-bit limbs on this machine")])
def test_inspect_says_whether_this_machine_takes_the_limb_products(app, compiled, monkeypatch, setting, expected):
    pytest.importorskip("onnxruntime")
    from verifier.kernels import limbs

    monkeypatch.setenv("VINFER_LIMB_PRODUCTS", setting)
    expected = expected.format(bits=limbs.x_limb_bits())
    result = runner.invoke(app, ["inspect", str(compiled[0]), "--json"])
    products = [n for n in json.loads(result.output)["nodes"] if n["op"].split("+")[0] in ("Conv", "Gemm")]
    assert products and all(expected in n["limbs"] for n in products)


def test_inspect_onnx_with_unsupported_ops_lists_them_and_fails(app, tmp_path):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["y"], name="hm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model_path = tmp_path / "m.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model_path))
    result = runner.invoke(app, ["inspect", str(model_path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["unsupported"] == [{"op": "RandomNormalLike", "node": "hm", "opset": 17}]


def test_compile_of_a_malformed_model_exits_1_with_a_message(app, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["compile", str(bad), "-o", str(tmp_path / "x.vfp")])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output


def test_run_with_a_wrong_input_name_exits_1_with_a_message(app, compiled, tmp_path):
    path, _ = compiled
    np.savez(tmp_path / "x.npz", image=np.zeros((1, 1, 8, 8), np.float32))
    result = runner.invoke(app, ["run", str(path), "--input", str(tmp_path / "x.npz")])
    assert result.exit_code == 1 and "missing input" in result.output


def test_run_of_a_non_program_file_exits_1(app, tmp_path):
    junk = tmp_path / "p.vfp"
    junk.write_bytes(b"VFP\x01junk")
    result = runner.invoke(app, ["run", str(junk), "--input", str(EXAMPLES / "digits_inputs.npz")])
    assert result.exit_code == 1 and "error:" in result.output


def test_compile_of_a_model_with_an_unsupported_op_names_it_and_exits_1(app, tmp_path):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["y"], name="hm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "m.onnx"))
    result = runner.invoke(app, ["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.vfp")])
    assert result.exit_code == 1
    assert "'RandomNormalLike'" in result.output and "'hm'" in result.output and "opset 17" in result.output
    assert not (tmp_path / "m.vfp").exists()


def test_run_with_nan_in_the_input_exits_1_with_a_message(app, compiled, tmp_path):
    path, _ = compiled
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 3, 3] = np.nan
    np.savez(tmp_path / "x.npz", input=x)
    result = runner.invoke(app, ["run", str(path), "--input", str(tmp_path / "x.npz")])
    assert result.exit_code == 1 and "NaN or inf" in result.output and "Traceback" not in result.output


def test_a_tabular_model_shows_its_feature_shifts_and_names_an_out_of_range_feature(app, tmp_path):
    """Raw breast-cancer features through the CLI: compile gives the input per-feature scales, inspect lists
    them, and run on a row whose small feature is far outside its calibrated range exits 1 naming the feature."""
    import warnings

    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True)
    features = features.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    (tmp_path / "cancer.onnx").write_bytes(to_onnx(model, features[:1], options={id(model): {"zipmap": False}},
                                                   target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString())
    np.savez(tmp_path / "calibration.npz", X=features[:400])
    out = tmp_path / "cancer.vfp"
    result = runner.invoke(app, ["compile", str(tmp_path / "cancer.onnx"), "--calibrate",
                                 str(tmp_path / "calibration.npz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0 and "feature f at 2^-(" in result.output and "shift [" in result.output
    rows = features[400:402].copy()
    rows[0, 9] = 50 * features[:400, 9].max()  # mean fractal dimension: below 0.1 in the calibration rows
    np.savez(tmp_path / "rows.npz", X=rows)
    result = runner.invoke(app, ["run", str(out), "--input", str(tmp_path / "rows.npz")])
    assert result.exit_code == 1 and "input 'X' feature 9:" in result.output


def test_a_node_that_cannot_run_on_the_inputs_is_a_message_and_exit_1(app, tmp_path):
    """A run-time failure of an op (here a Gather index outside its axis) reaches the CLI as the node's name and
    the op's message, not a traceback."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], name="lookup")], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              [numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "table")])
    model = tmp_path / "lookup.onnx"
    model.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    np.savez(tmp_path / "ids.npz", ids=np.array([1, 2], np.int64))
    np.savez(tmp_path / "bad.npz", ids=np.array([1, 9], np.int64))
    program = tmp_path / "lookup.vfp"
    result = runner.invoke(app, ["compile", str(model), "--calibrate", str(tmp_path / "ids.npz"), "-o", str(program)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", str(program), "--input", str(tmp_path / "bad.npz")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # (typer.Exit, no traceback)
    assert "node 'lookup' (Gather) cannot run on these inputs: Gather index outside [-4, 4)" in result.output
