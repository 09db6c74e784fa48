"""Committed output widths (program format 4): outputs proven within 16 bits are returned, encoded and hashed as
int16; the values are those of the int64 outputs; a width a program claims but its values break fails the run."""

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, Program, compile_model, execute_job
from verifier.compiler.committed import committed_bits
from verifier.encoding import decode_tensors, encode_tensors
from verifier.errors import ProgramFormatError, ProgramRunError
from verifier.interpreter import committed, forced_path
from verifier_helpers import with_output_bits


def _classifier_with_a_label():
    """MatMul -> Relu -> MatMul with the hidden activations, the logits and their ArgMax as outputs."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["hidden"]),
             helper.make_node("MatMul", ["hidden", "w2"], ["logits"]),
             helper.make_node("ArgMax", ["logits"], ["label"], axis=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 4]),
         helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [None, 16]),
         helper.make_tensor_value_info("label", TensorProto.INT64, [None, 1])],
        [numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w1"),
         numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng.standard_normal((32, 8))


def test_outputs_proven_within_16_bits_are_committed_as_int16_with_the_int64_values(example_program,
                                                                                     example_inputs):
    assert [info.bits for info in example_program.outputs] == [16] and example_program.to_bytes()[3] == 4
    narrow = InferenceSession(example_program).run_fixed(example_inputs)
    wide = InferenceSession(with_output_bits(example_program, None)).run_fixed(example_inputs)
    assert narrow.outputs["logits"].dtype == np.int16 and wide.outputs["logits"].dtype == np.int64
    assert np.array_equal(narrow.outputs["logits"], wide.outputs["logits"])
    assert narrow.output_bytes == encode_tensors({"logits": wide.outputs["logits"].astype(np.int16)})
    assert len(narrow.output_bytes) < len(wide.output_bytes) / 3
    assert np.array_equal(decode_tensors(narrow.output_bytes)["logits"], wide.outputs["logits"])


@pytest.mark.parametrize("matmul_bits", [16, 8])
def test_each_output_gets_the_width_proven_for_it_and_unproven_ones_stay_int64(matmul_bits):
    model, x = _classifier_with_a_label()
    program = compile_model(model, calibration={"x": x.astype(np.float32)}, matmul_bits=matmul_bits)
    assert {info.name: info.bits for info in program.outputs} == {"logits": 16, "hidden": 16, "label": None}
    result = InferenceSession(program).run_fixed({"x": x[:5].astype(np.float32)})
    assert [result.outputs[name].dtype for name in ("logits", "hidden", "label")] == [np.int16, np.int16, np.int64]
    loaded = Program.from_bytes(program.to_bytes())
    assert loaded.outputs == program.outputs and loaded.hash == program.hash


def test_the_narrowest_committed_width_holds_the_proven_one():
    assert [committed_bits(width) for width in (0, 1, 8, 9, 16)] == [None, 8, 8, 16, 16]


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_a_width_the_values_break_fails_the_run_on_every_path(example_program, example_inputs, path):
    """A hand-made program committing the 16-bit logits at 8 bits: a run error naming the output, never wrapped
    values; at 32 bits they fit: int32, the same values."""
    expected = InferenceSession(example_program).run_fixed(example_inputs).outputs["logits"]
    assert np.abs(expected).max() > 127  # (the digits logits need more than int8)
    too_narrow = Program.from_bytes(with_output_bits(example_program, 8).to_bytes())
    with forced_path(path), pytest.raises(ProgramRunError, match=r"'logits': value -?\d+ is outside \+-127, the int8"):
        InferenceSession(too_narrow).run_fixed(example_inputs)
    outcome = execute_job(too_narrow.to_bytes(), InferenceSession(example_program).encode_inputs(example_inputs))
    assert not outcome.ok and "the int8 range" in outcome.error
    wide = InferenceSession(Program.from_bytes(with_output_bits(example_program, 32).to_bytes()), path=path)
    outputs = wide.run_fixed(example_inputs).outputs["logits"]
    assert outputs.dtype == np.int32 and np.array_equal(outputs, expected)


def test_committed_widths_are_read_back_and_checked(example_program):
    data = example_program.to_bytes()
    assert Program.from_bytes(data).outputs[0].bits == 16
    with pytest.raises(ProgramFormatError, match="format version 1 does not match"):
        Program.from_bytes(data[:3] + b"\x01" + data[4:])  # a format-1 reader would commit int64 bytes
    for bad in (12, 64, "16", -8):
        text = data.replace(b'"bits":16', b'"bits":' + repr(bad).replace("'", '"').encode())
        fixed = text[:4] + (int.from_bytes(text[4:8], "little") + len(text) - len(data)).to_bytes(4, "little")
        with pytest.raises(ProgramFormatError, match="committed bits"):
            Program.from_bytes(fixed + text[8:])
    inputs = [replace(info, bits=16) for info in example_program.inputs]
    hand_made = Program(inputs, example_program.outputs, example_program.nodes, example_program.constants,
                        example_program.fracs, example_program.meta)
    with pytest.raises(ProgramFormatError, match="committed bits are for outputs"):
        Program.from_bytes(hand_made.to_bytes())


def test_the_reference_path_checks_the_proven_symmetric_range_not_the_dtype(example_program):
    """-32768 fits int16 but no activation takes it (|q| <= 32767): on the reference path, which checks what the
    fast path takes from the range rules, a run error, as any value outside the proof."""
    edge = {"logits": np.array([[32767, -32767] * 5])}
    with forced_path("reference"):
        assert np.array_equal(committed(example_program, dict(edge))["logits"], edge["logits"])
        with pytest.raises(ProgramRunError, match="value -32768 is outside"):
            committed(example_program, {"logits": np.array([[0, -32768] * 5])})
