"""Programs with 8-bit products (compile_model(..., matmul_bits=8), docs/fixed-point.md "8-bit products"):
weights and run-time operands of every Conv, Gemm and MatMul are rounded to 8 bits, the products run in
float32 BLAS, and the fast path still equals the int64 reference bit for bit. The default (16) is untouched.

Accuracy at 8 bits against onnxruntime float32 is measured by scripts/bench_verifier.py (its "rel err" column;
docs/fixed-point.md lists the figures); the bounds below are what these tests hold it to: top-1 agreement
>= 99% and logit error <= 5% of the largest logit on the digits models, squeezenet's trunk within 5%."""

import copy
import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from verifier import InferenceSession, Program, compile_model, cost
from verifier.errors import CompileError
from verifier.feeds import integer_feeds
from verifier.interpreter import execute
from verifier_helpers import EXAMPLES, ort_run, with_output_bits

PRODUCTS = ("Conv", "Gemm", "MatMul")


def narrow_nodes(program):
    return [node for node in program.nodes if node.op in PRODUCTS]


@pytest.fixture(scope="module")
def example_calibration():
    with np.load(EXAMPLES / "digits_calibration.npz") as data:
        return {"input": data["input"]}


@pytest.mark.parametrize("name", ["cnn_torchscript", "mlp_dynamo"])
def test_8_bit_digits_models_keep_top1_and_accuracy(name, digits_models, digits):
    x_train, x_test, _, y_test = digits
    path = digits_models[name]
    program = compile_model(path, calibration={"input": x_train[:256]}, matmul_bits=8)
    fixed = InferenceSession(program).run(None, {"input": x_test})[0]
    reference = ort_run(path, {"input": x_test})[0]
    assert np.mean(fixed.argmax(1) == reference.argmax(1)) >= 0.99
    assert np.mean(fixed.argmax(1) == y_test) >= np.mean(reference.argmax(1) == y_test) - 0.01
    assert np.max(np.abs(fixed - reference)) <= 0.05 * np.max(np.abs(reference))


@pytest.mark.parametrize("name", ["cnn_dynamo", "mlp_torchscript"])
def test_8_bit_fast_path_equals_the_reference_on_every_node(name, digits_models, digits):
    x_train, x_test, _, _ = digits
    program = compile_model(digits_models[name], calibration={"input": x_train[:256]}, matmul_bits=8)
    # beyond the calibrated range too (the narrowed operands saturate at +-127), and negative
    feeds = {"input": np.concatenate([x_test[:64], -x_test[:8], np.full_like(x_test[:4], 1.99)])}
    fast = InferenceSession(program, path="fast").run_trace(feeds)
    reference = InferenceSession(program, path="reference").run_trace(feeds)
    assert fast == reference and len(fast) == len(program.nodes)


def test_every_product_of_an_8_bit_program_narrows_its_operands_and_runs_in_float32(example_calibration):
    program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    assert program.meta["matmul_bits"] == 8
    nodes = narrow_nodes(program)
    assert nodes and all(node.attrs["operand_bits"] == 8 and node.attrs["path"] == "float32" for node in nodes)
    for node in nodes:
        weight = node.consts["weight"]
        assert 64 <= np.max(np.abs(weight)) <= 127  # its own 8-bit frac: the top bit used
        shift = node.attrs.get("x_shift", node.attrs.get("a_shift"))
        assert 0 <= shift <= 62


def test_the_default_is_16_bits_and_leaves_programs_unchanged(example_calibration, example_program):
    program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=16)
    assert program.hash == example_program.hash
    assert "matmul_bits" not in program.meta
    assert not any("operand_bits" in node.attrs for node in program.nodes)
    narrow = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    assert narrow.hash != program.hash


@pytest.mark.parametrize("bits", [4, 12, 32, "8"])
def test_other_operand_widths_are_refused(bits, example_calibration):
    with pytest.raises(CompileError, match="matmul_bits must be one of 16, 8"):
        compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=bits)


def test_an_8_bit_program_is_charged_its_narrowing_passes(example_calibration, example_inputs, example_program):
    narrow = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    units = {}
    for bits, program in ((16, example_program), (8, narrow)):
        stats = {}
        execute(program, integer_feeds(program, example_inputs), stats=stats)
        units[bits] = stats["units"]
    # float32 and float64 multiply-adds weigh the same unit (the cost is a bound, not a timing); the 8-bit
    # program pays one more pass over each narrowed operand
    assert cost.mac_weight("float32") == cost.mac_weight("float64")
    assert units[16] < units[8] < 1.05 * units[16]


def test_session_and_sdk_compile_8_bit_programs(example_calibration, example_inputs):
    from sdk.client import _as_program

    session = InferenceSession(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    assert session.program.meta["matmul_bits"] == 8
    assert _as_program(EXAMPLES / "digits_cnn.onnx", example_calibration, 8).hash == session.program.hash
    reference = ort_run(EXAMPLES / "digits_cnn.onnx", example_inputs)[0]
    assert np.array_equal(session.run(None, example_inputs)[0].argmax(1), reference.argmax(1))


def test_light_squeezenet_at_8_bits_matches_onnxruntime_and_its_reference_path():
    from test_light_models import LIGHT, _feeds, _trunk

    model = _trunk(onnx.load(str(LIGHT / "light_squeezenet.onnx")))
    calibration, x = _feeds(model)
    program = compile_model(model, calibration=calibration, matmul_bits=8)
    fixed = InferenceSession(program).run(None, x)[0]
    reference = ort_run(model, x)[0]
    assert np.all(np.isfinite(fixed)) and np.max(np.abs(fixed - reference)) <= 0.05 * np.max(np.abs(reference))
    feeds = integer_feeds(program, x)
    assert InferenceSession(program, path="reference").run_fixed(x).commitment == \
        InferenceSession(program, path="fast").run_fixed(x).commitment
    assert set(execute(program, feeds)) == {o.name for o in program.outputs}


def test_cli_compiles_8_bit_programs_and_inspect_says_so(tmp_path):
    from verifier.cli import register
    import typer

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "digits8.vfp"
    result = runner.invoke(app, ["compile", str(EXAMPLES / "digits_cnn.onnx"), "--calibrate",
                                 str(EXAMPLES / "digits_calibration.npz"), "--matmul-bits", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["inspect", str(out)])
    assert "8-bit products" in shown.output and "operands narrowed to 8 bits" in shown.output
    nodes = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).output)["nodes"]
    products = [n for n in nodes if n["op"].split("+")[0] in PRODUCTS]
    assert all(n["narrowed"]["bits"] == 8 and n["epilogue"].startswith("summed onto the bias") for n in products)
    refused = runner.invoke(app, ["compile", str(EXAMPLES / "digits_cnn.onnx"), "--matmul-bits", "5",
                                  "-o", str(tmp_path / "x.vfp")])
    assert refused.exit_code != 0 and "matmul_bits must be one of 16, 8" in refused.output
    assert not (tmp_path / "x.vfp").exists()


def test_a_product_output_read_only_by_products_is_produced_at_its_8_bit_scale(example_calibration, example_inputs):
    program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    convs = [node for node in program.nodes if node.op == "Conv"]
    # conv1 -> Relu (fused) -> conv2: conv1 saturates at +-127 at the 8-bit frac, conv2 reads it unshifted
    assert convs[0].attrs["out_bits"] == 8 and convs[1].attrs["x_shift"] == 0
    logits = program.nodes[-1]
    assert "out_bits" not in logits.attrs  # a graph output stays 16-bit
    fast = InferenceSession(program, path="fast").run_trace(example_inputs)
    assert fast == InferenceSession(program, path="reference").run_trace(example_inputs)


def test_an_operand_claimed_narrow_but_wider_is_saturated_alike_on_both_paths(example_calibration, example_inputs):
    """A hand-edited program whose producer no longer saturates at 8 bits: the reader's shift-0 narrowing
    saturates what exceeds +-127 itself, and both paths give the same bits."""
    program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    nodes = copy.deepcopy(program.nodes)
    first = next(node for node in nodes if node.op == "Conv")
    del first.attrs["out_bits"]
    first.attrs["out_frac"] += 3  # 8x the values: most exceed 127
    edited = Program(inputs=program.inputs, outputs=program.outputs, nodes=nodes, constants=program.constants,
                     fracs=program.fracs, meta=program.meta)
    reference = InferenceSession(edited, path="reference").run_trace(example_inputs)
    assert InferenceSession(edited, path="fast").run_trace(example_inputs) == reference
    original = InferenceSession(compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration,
                                              matmul_bits=8)).run_trace(example_inputs)
    assert reference[0] != original[0]  # the edit did change what conv1 emits


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_a_shift_0_operand_beyond_8_bits_is_saturated_before_the_product(path):
    """The float32 plan's exactness rests on |operand| <= 127: an unshifted operand that exceeds it (only a
    hand-edited program makes one) is saturated, never passed through."""
    from verifier.ops._operands import narrowed

    x = np.array([[-32767, -128, -127, 0, 127, 128, 5000]], dtype=np.int64)
    attrs = {"operand_bits": 8, "x_shift": 0}
    narrow, bound, value_range = narrowed(x, attrs, "x_shift", path)
    assert bound == 127 and narrow.tolist() == [[-127, -127, -127, 0, 127, 127, 127]]
    assert value_range == (-127, 127)  # the narrowed operand's range, which the limb products start from
    inside = np.array([[-127, 3, 127]], dtype=np.int64)
    assert narrowed(inside, attrs, "x_shift", path)[0] is inside  # already narrow: no pass


def test_8_bit_programs_are_format_2_and_a_mislabelled_one_is_refused(example_calibration, example_program):
    from verifier.errors import ProgramFormatError

    compiled = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    assert compiled.to_bytes()[:4] == b"VFP\x04"  # (its outputs committed at 16 bits: format 4, which reads 2's too)
    narrow = with_output_bits(compiled, None)  # (the same products, int64 outputs)
    wide = with_output_bits(example_program, None)
    data = narrow.to_bytes()
    assert data[:4] == b"VFP\x02" and wide.to_bytes()[:4] == b"VFP\x01"
    assert Program.from_bytes(data).hash == narrow.hash
    for version in (1, 3, 0):  # a format-1 reader would run it without narrowing: refused, not misread
        with pytest.raises(ProgramFormatError, match="format version"):
            Program.from_bytes(data[:3] + bytes([version]) + data[4:])
    with pytest.raises(ProgramFormatError, match="does not match"):
        Program.from_bytes(wide.to_bytes()[:3] + b"\x02" + wide.to_bytes()[4:])


@pytest.mark.parametrize("width", [12, 40, 0, -3, True])
def test_a_program_with_another_operand_width_is_refused_before_it_runs(width, example_calibration,
                                                                        example_inputs):
    from verifier import execute_job
    from verifier.encoding import encode_tensors
    from verifier.errors import ProgramFormatError

    program = compile_model(EXAMPLES / "digits_cnn.onnx", calibration=example_calibration, matmul_bits=8)
    nodes = copy.deepcopy(program.nodes)
    nodes[0].attrs["operand_bits"] = width
    edited = Program(inputs=program.inputs, outputs=program.outputs, nodes=nodes, constants=program.constants,
                     fracs=program.fracs, meta=program.meta)
    with pytest.raises(ProgramFormatError, match="operand width"):
        edited.validate()
    outcome = execute_job(edited.to_bytes(), encode_tensors(integer_feeds(program, example_inputs)))
    assert not outcome.ok and "operand width" in outcome.error
