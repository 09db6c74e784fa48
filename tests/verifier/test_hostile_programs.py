"""execute_job never raises on hostile program or input bytes, and what it returns is deterministic."""

import json
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import InferenceSession, execute_job
from verifier.encoding import encode_tensors


def _header_and_rest(data: bytes):
    """(header, rest): rest is the bytes after the header, with the magic and format version kept in front."""
    (length,) = struct.unpack("<I", data[4:8])
    return json.loads(data[8 : 8 + length]), (data[:4], data[8 + length :])


def _with_header(header: dict, rest: tuple) -> bytes:
    """The program bytes with this header, in the original's format version (so that only the edit differs)."""
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return rest[0] + struct.pack("<I", len(raw)) + raw + rest[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_in_a_program_never_raise_and_repeat_exactly(data, example_program, example_inputs):
    program = bytearray(example_program.to_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(program) - 1))
        program[position] = data.draw(st.integers(0, 255))
    inputs = InferenceSession(example_program).encode_inputs(example_inputs)
    first = execute_job(bytes(program), inputs)
    second = execute_job(bytes(program), inputs)
    assert (first.output_bytes, first.result_hash, first.ok) == (second.output_bytes, second.result_hash, second.ok)


HOSTILE_ATTRS = [
    {"pads": [0, 0, 10**9, 10**9]},
    {"strides": [0, 0]},
    {"strides": "x"},
    {"group": 0},
    {"acc_frac": 10**30},
    {"dilations": [-1, -1]},
    {"pool": {"kernel_shape": [0, 3], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "ceil_mode": 0}},
    {"pool": {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [10**9, 0, 0, 0], "dilations": [1, 1],
              "ceil_mode": 0}},
    {"pool": "x"},
    {"out_bits": 8}, {"out_bits": 40}, {"out_bits": -1}, {"out_bits": "x"},  # (range facts: interpreter._plan_ranges)
    {"integer": 1}, {"fracs": 5}, {"fracs": [1, 2, 3]},
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attrs=st.sampled_from(HOSTILE_ATTRS), node=st.integers(0, 5))
def test_hostile_attributes_give_an_error_outcome_not_an_exception(attrs, node, example_program, example_inputs):
    header, rest = _header_and_rest(example_program.to_bytes())
    index = node % len(header["nodes"])
    header["nodes"][index]["attrs"].update(attrs)
    inputs = InferenceSession(example_program).encode_inputs(example_inputs)
    outcome = execute_job(_with_header(header, rest), inputs)
    assert outcome.result_hash == execute_job(_with_header(header, rest), inputs).result_hash


def test_hostile_expand_to_a_huge_shape_is_a_cost_error_outcome(example_program, example_inputs):
    header, rest = _header_and_rest(example_program.to_bytes())
    header["nodes"].append({"op": "Expand", "name": "bomb", "inputs": ["input"], "outputs": ["input_big"],
                               "attrs": {"shape": [10**7, 1, 1, 1, 1]}, "consts": [], "out_fracs": [14]})
    outcome = execute_job(_with_header(header, rest), InferenceSession(example_program).encode_inputs(example_inputs))
    assert not outcome.ok and outcome.error_code == 3 and "elements" in outcome.error


def test_input_bytes_with_a_huge_declared_shape_are_a_bad_input_outcome(example_program):
    data = bytearray(encode_tensors({"input": np.zeros((1, 1, 8, 8), np.int64)}))
    outcome = execute_job(example_program.to_bytes(), bytes(data[:-8]))
    assert not outcome.ok and outcome.error_code == 4


def test_a_conv_bias_of_the_wrong_size_behaves_the_same_on_both_paths(example_program, example_inputs):
    """A program whose Conv bias is not one value per output channel (only hand-made bytes have one) takes
    the unfused epilogue on the fast path: the same broadcast - or the same refusal - as the reference."""
    from verifier.errors import ProgramRunError
    from verifier.feeds import integer_feeds
    from verifier.interpreter import execute, forced_path
    from verifier.program import Program

    conv = next(i for i, n in enumerate(example_program.nodes) if n.op == "Conv")
    channels = example_program.nodes[conv].consts["weight"].shape[0]
    for size in (1, channels - 1):
        program = Program.from_bytes(example_program.to_bytes())
        program.nodes[conv].consts["bias"] = np.arange(1, size + 1, dtype=np.int64) << 20
        feeds = integer_feeds(program, example_inputs)
        outcomes = []
        for path in ("fast", "reference"):
            with forced_path(path):
                try:
                    outcomes.append(encode_tensors(execute(program, feeds)))
                except ProgramRunError as exc:  # (the op's ValueError, named with its node)
                    outcomes.append(type(exc.__cause__))
        assert outcomes[0] == outcomes[1]
        assert (outcomes[0] is ValueError) == (size != 1)
