"""Bad input is a clear error naming what was wrong, and execute_job turns it into the deterministic error
outcome instead of raising."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from verifier import InferenceSession, Program, compile_model, execute_job
from verifier.encoding import decode_tensors, encode_tensors
from verifier.errors import (CostLimitError, FeedError, ModelLoadError, OutOfRangeError, ProgramFormatError,
                             UnsupportedOpError)
from verifier.job import ERROR_TENSOR
from verifier_helpers import EXAMPLES


def two_node_model(op="Relu", opset=17, domain=""):
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="first"), helper.make_node(op, ["h"], ["y"], name="second", domain=domain)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


@pytest.fixture(scope="module")
def session():
    calibration = {"x": np.linspace(-4, 4, 32, dtype=np.float32).reshape(8, 4)}
    return InferenceSession(compile_model(two_node_model(), calibration=calibration))


def test_malformed_onnx_bytes_are_a_model_load_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all\xff\xff")
    with pytest.raises(ModelLoadError):
        compile_model(path)


def test_missing_model_file_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model file"):
        compile_model(tmp_path / "missing.onnx")


def test_unsupported_op_names_the_op_the_node_and_the_opset():
    with pytest.raises(UnsupportedOpError) as caught:
        compile_model(two_node_model("RandomNormalLike", opset=15))
    assert caught.value.op_type == "RandomNormalLike" and caught.value.node_name == "second" and caught.value.opset == 15
    assert "'RandomNormalLike'" in str(caught.value) and "'second'" in str(caught.value) and "opset 15" in str(caught.value)


def test_custom_domain_op_is_unsupported():
    with pytest.raises(UnsupportedOpError, match="com.example.Relu"):
        compile_model(two_node_model("Relu", domain="com.example"))


def test_missing_feed_is_named(session):
    with pytest.raises(FeedError, match="missing input.*'x'"):
        session.run(None, {})


def test_extra_feed_is_named(session):
    with pytest.raises(FeedError, match="unknown input.*'z'"):
        session.run(None, {"x": np.zeros((1, 4), np.float32), "z": np.zeros(1)})


def test_wrong_shape_is_a_feed_error(session):
    with pytest.raises(FeedError, match=r"shape \(1, 5\)"):
        session.run(None, {"x": np.zeros((1, 5), np.float32)})


def test_wrong_dtype_is_a_feed_error(session):
    with pytest.raises(FeedError, match="dtype"):
        session.run(None, {"x": np.array([["a", "b", "c", "d"]])})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_a_float_feed_is_a_feed_error(session, bad):
    x = np.zeros((2, 4), np.float32)
    x[1, 2] = bad
    with pytest.raises(FeedError, match="NaN or inf"):
        session.run(None, {"x": x})


def test_value_outside_the_program_range_is_an_out_of_range_error(session):
    with pytest.raises(OutOfRangeError, match="outside the program's range"):
        session.run(None, {"x": np.full((1, 4), 1e6, np.float32)})


def test_encoded_feed_outside_16_bits_is_out_of_range(session):
    with pytest.raises(OutOfRangeError):
        session.run_fixed({"x": np.full((1, 4), 40000, np.int64)})


@pytest.mark.parametrize("huge", [1e19, -3e30, np.finfo(np.float32).max])
@pytest.mark.parametrize("rows", [1, 64])  # (4 values: the loop's scalar tail; 256: its vector body too)
def test_a_float_feed_too_large_for_int64_is_out_of_range_not_wrapped(session, huge, rows):
    x = np.full((rows, 4), 0.5, np.float32)
    x[-1, 2] = huge
    with pytest.raises(OutOfRangeError, match="outside the program's range"):
        session.run_fixed({"x": x})


@pytest.mark.parametrize("wrong", [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -32768])
def test_encoded_feed_bytes_outside_16_bits_are_the_out_of_range_outcome(session, wrong):
    """|INT64_MIN| wraps to itself: a check of max |v| would let it in, past the range the fast path relies on."""
    x = np.full((2, 4), 100, np.int64)
    x[1, 3] = wrong
    with pytest.raises(OutOfRangeError, match="encoded values must lie"):
        session.run_fixed({"x": x})
    outcome = execute_job(session.program.to_bytes(), encode_tensors({"x": x}))
    assert not outcome.ok and outcome.error_code == 5


def test_unknown_output_name_is_a_feed_error(session):
    with pytest.raises(FeedError, match="unknown output"):
        session.run(["nope"], {"x": np.zeros((1, 4), np.float32)})


def test_garbage_program_bytes_are_a_program_format_error():
    with pytest.raises(ProgramFormatError):
        Program.from_bytes(b"VFP\x01\xff\xff\xff\x00garbage")
    assert not Program.is_program(b"PK\x03\x04")


def test_truncated_program_is_a_program_format_error(session):
    data = session.program.to_bytes()
    with pytest.raises(ProgramFormatError):
        Program.from_bytes(data[: len(data) - 3])


def _error_code(outcome):
    assert not outcome.ok and outcome.error
    return int(decode_tensors(outcome.output_bytes)[ERROR_TENSOR][0])


def test_execute_job_on_garbage_program_gives_the_deterministic_error_outcome():
    first, second = execute_job(b"not a program", b""), execute_job(b"not a program", b"other")
    assert _error_code(first) == 1
    assert first.output_bytes == second.output_bytes and first.result_hash == second.result_hash


def test_execute_job_on_bad_input_bytes_gives_the_feed_error_outcome(session):
    assert _error_code(execute_job(session.program.to_bytes(), b"junk")) == 4
    wrong_shape = encode_tensors({"x": np.zeros((1, 3), np.int64)})
    assert _error_code(execute_job(session.program.to_bytes(), wrong_shape)) == 4


def test_execute_job_over_the_cost_limit_gives_the_cost_error_outcome(session):
    inputs = encode_tensors({"x": np.zeros((64, 4), np.int64)})
    outcome = execute_job(session.program.to_bytes(), inputs, max_cost=100)
    assert _error_code(outcome) == 3 and isinstance(outcome.error, str)


def test_execute_job_with_an_unknown_op_in_the_program_gives_an_error_outcome(session):
    program = Program.from_bytes(session.program.to_bytes())
    program.nodes[1].op = "Bogus"
    program._bytes = None
    outcome = execute_job(program.to_bytes(), encode_tensors({"x": np.zeros((1, 4), np.int64)}))
    assert _error_code(outcome) == 2 and "Bogus" in outcome.error


def test_program_reading_a_tensor_before_it_is_computed_fails_validation(session):
    program = Program.from_bytes(session.program.to_bytes())
    program.nodes.reverse()
    with pytest.raises(ProgramFormatError, match="before anything computes it"):
        program.validate()


def test_cost_limit_error_is_raised_by_the_interpreter(session):
    from verifier.interpreter import execute

    with pytest.raises(CostLimitError):
        execute(session.program, {"x": np.zeros((1000, 4), np.int64)}, max_cost=10)


def test_calibration_missing_an_input_is_a_compile_error():
    from verifier.errors import CompileError

    with pytest.raises(CompileError, match="no input 'x'"):
        compile_model(two_node_model(), calibration={"y": np.zeros((1, 4), np.float32)})
