"""The same program and input give the same commitment: repeated runs, fresh processes, BLAS/OpenMP thread
counts, the fast and reference execution paths, and random small models (hypothesis)."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, Program, compile_model, execute_job
from verifier_helpers import EXAMPLES, ROOT

CHILD = """
import json, sys
import numpy as np
from verifier import InferenceSession, Program
program = Program.load(sys.argv[1])
with np.load(sys.argv[2]) as data:
    feeds = {k: data[k] for k in data.files}
session = InferenceSession(program, path=sys.argv[3] if len(sys.argv) > 3 else None)
print(json.dumps({"program": program.hash, "commitment": session.run_fixed(feeds).commitment}))
"""


def test_repeated_runs_give_the_same_commitment(example_program, example_inputs):
    session = InferenceSession(example_program)
    commitments = {session.run_fixed(example_inputs).commitment for _ in range(5)}
    assert len(commitments) == 1


def test_recompiling_gives_the_same_program_hash(example_program):
    with np.load(EXAMPLES / "digits_calibration.npz") as data:
        again = compile_model(EXAMPLES / "digits_cnn.onnx", calibration={"input": data["input"]})
    assert again.hash == example_program.hash
    assert again.to_bytes() == example_program.to_bytes()


def test_fast_and_reference_paths_agree_on_every_node(example_program, example_inputs):
    fast = InferenceSession(example_program, path="fast").run_trace(example_inputs)
    reference = InferenceSession(example_program, path="reference").run_trace(example_inputs)
    assert fast == reference
    assert len(fast) == len(example_program.nodes)


def test_fresh_processes_and_thread_counts_give_the_same_commitment(example_program, example_inputs, tmp_path):
    program_path, inputs_path = tmp_path / "p.vfp", tmp_path / "x.npz"
    example_program.save(program_path)
    np.savez(inputs_path, **example_inputs)
    expected = InferenceSession(example_program).run_fixed(example_inputs).commitment
    for threads in ("1", "2"):
        for path in ("fast", "reference"):
            env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
            out = subprocess.run([sys.executable, "-c", CHILD, str(program_path), str(inputs_path), path], env=env,
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            assert result == {"program": example_program.hash, "commitment": expected}, (threads, path)


def test_execute_job_commits_to_the_same_bytes_as_the_session(example_program, example_inputs):
    session = InferenceSession(example_program)
    outcome = execute_job(example_program.to_bytes(), session.encode_inputs(example_inputs))
    fixed = session.run_fixed(example_inputs)
    assert outcome.ok and outcome.result_hash == fixed.commitment and outcome.output_bytes == fixed.output_bytes


def test_execute_job_keeps_its_last_programs_decoded_and_commits_the_same_bytes(example_program, example_inputs):
    """A slot runs job after job of the same model: the program is decoded once (kept by the sha256 of its
    bytes, with what its kernels prepared) and every job commits what a fresh decode commits."""
    from verifier import job

    data, inputs = example_program.to_bytes(), InferenceSession(example_program).encode_inputs(example_inputs)
    first = execute_job(data, inputs)
    kept = job._program(data)
    assert execute_job(data, inputs) == first and job._program(data) is kept
    assert job._program(bytes(data)) is kept  # the same bytes, another object: still the kept program
    for note in range(job.KEPT_PROGRAMS):  # other programs push it out, the oldest first
        other = dataclasses.replace(example_program, meta={**example_program.meta, "note": note}, _bytes=None)
        job._program(other.to_bytes())
    assert job._program(data) is not kept and execute_job(data, inputs) == first
    malformed = data[:-1]  # never kept: every job refuses it again
    assert execute_job(malformed, inputs).error_code == execute_job(malformed, inputs).error_code == 1
    assert len(job._programs) == job.KEPT_PROGRAMS


def test_program_survives_a_save_and_load_bit_for_bit(example_program, tmp_path):
    example_program.save(tmp_path / "p.vfp")
    loaded = Program.load(tmp_path / "p.vfp")
    assert loaded.to_bytes() == example_program.to_bytes() and loaded.hash == example_program.hash


# -- random small models ----------------------------------------------------------------------------

LAYERS = st.sampled_from(["gemm", "relu", "leaky", "add_self", "mul_self", "clip"])


def random_mlp(seed: int, widths: list[int], layers: list[str]):
    rng = np.random.default_rng(seed)
    nodes, inits, current, width = [], [], "x", widths[0]
    for i, (kind, out_width) in enumerate(zip(layers, widths[1:] + [widths[-1]] * len(layers))):
        out = f"t{i}"
        if kind == "gemm":
            inits += [numpy_helper.from_array(rng.standard_normal((width, out_width)).astype(np.float32) * 0.5, f"w{i}"),
                      numpy_helper.from_array(rng.standard_normal(out_width).astype(np.float32) * 0.1, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [out]))
            width = out_width
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif kind == "leaky":
            nodes.append(helper.make_node("LeakyRelu", [current], [out], alpha=0.1))
        elif kind == "add_self":
            nodes.append(helper.make_node("Add", [current, current], [out]))
        elif kind == "mul_self":
            nodes.append(helper.make_node("Mul", [current, current], [out]))
        else:
            inits += [numpy_helper.from_array(np.array(-1.0, np.float32), f"lo{i}"),
                      numpy_helper.from_array(np.array(1.0, np.float32), f"hi{i}")]
            nodes.append(helper.make_node("Clip", [current, f"lo{i}", f"hi{i}"], [out]))
        current = out
    graph = helper.make_graph(nodes, "random", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", widths[0]])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["N", width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), widths=st.lists(st.integers(1, 24), min_size=2, max_size=4),
       layers=st.lists(LAYERS, min_size=1, max_size=5), batch=st.integers(1, 6))
def test_random_small_models_run_identically_on_both_paths_and_through_execute_job(seed, widths, layers, batch):
    model = random_mlp(seed, widths, layers)
    rng = np.random.default_rng(seed + 1)
    # the inputs below are clipped to +-3: calibrate that range (16 normal samples need not reach it)
    samples = np.concatenate([rng.standard_normal((16, widths[0])), np.full((1, widths[0]), 3.0), np.full((1, widths[0]), -3.0)])
    program = compile_model(model, calibration={"x": samples.astype(np.float32)})
    x = {"x": np.clip(rng.standard_normal((batch, widths[0])), -3, 3).astype(np.float32)}
    fast = InferenceSession(program, path="fast")
    reference = InferenceSession(Program.from_bytes(program.to_bytes()), path="reference")
    assert fast.run_trace(x) == reference.run_trace(x)
    outcome = execute_job(program.to_bytes(), fast.encode_inputs(x))
    assert outcome.ok and outcome.result_hash == fast.run_fixed(x).commitment


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), edge=st.sampled_from([32767, -32767, 0, 1, -1]))
def test_inputs_at_the_edges_of_the_range_run_identically_on_both_paths(seed, edge, example_program):
    rng = np.random.default_rng(seed)
    q = rng.integers(-32767, 32768, size=(3, 1, 8, 8), dtype=np.int64)
    q[0] = edge
    feeds = {"input": q}
    fast = InferenceSession(example_program, path="fast").run_fixed(feeds)
    reference = InferenceSession(example_program, path="reference").run_fixed(feeds)
    assert fast.commitment == reference.commitment


def test_session_thread_limits_do_not_change_the_commitment(example_program, example_inputs):
    commitments = {InferenceSession(example_program, threads=threads).run_fixed(example_inputs).commitment
                   for threads in (None, 1, 2)}
    assert len(commitments) == 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 2, 4]), groups=st.sampled_from([1, 2]),
       kernel=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       pool=st.sampled_from(["MaxPool", "AveragePool", "GlobalAveragePool"]), batch=st.integers(1, 3))
def test_random_small_cnns_run_identically_on_both_paths(seed, channels, groups, kernel, stride, pad, pool, batch):
    rng = np.random.default_rng(seed)
    in_channels, out_channels = 2 * channels, 2 * channels
    weight = rng.standard_normal((out_channels, in_channels // groups, kernel, kernel)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride] * 2, pads=[pad] * 4, group=groups),
             helper.make_node("Relu", ["c"], ["r"])]
    pool_attrs = {} if pool == "GlobalAveragePool" else {"kernel_shape": [2, 2], "strides": [1, 1]}
    nodes.append(helper.make_node(pool, ["r"], ["y"], **pool_attrs))
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_channels, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(rng.standard_normal(out_channels).astype(np.float32), "b")])
    graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_channels, None, None]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    program = compile_model(model, calibration={"x": rng.standard_normal((8, in_channels, 7, 7)).astype(np.float32)})
    x = {"x": np.clip(rng.standard_normal((batch, in_channels, 7, 7)), -3, 3).astype(np.float32)}
    assert InferenceSession(program, path="fast").run_trace(x) == InferenceSession(program, path="reference").run_trace(x)
