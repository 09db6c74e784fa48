"""Shared by the end-to-end and worker tests: a tiny real ONNX model and chain-reading helpers."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ESCALATION_PARAMS = {"growth": 1}


def tiny_model() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def job_events(network, job_id: int, name: str) -> list:
    return [e for e in network.client(network.requester).events(job_id=job_id) if e.name == name]


def status_of(network, job_id: int) -> str:
    return network.client(network.requester).job_status(job_id).name


def wait_until_assigned(network, job_id: int, round_: int = 1, timeout: float = 30, job=None) -> set[str]:
    """`job`: an sdk Job to move along (assign) while no worker node is running yet."""
    network.wait_for(lambda: (job is None or job.advance() or True) and any(int(e.args["round"]) == round_ for e in job_events(network, job_id, "WorkerAssigned"))
                     and status_of(network, job_id) != "SUBMITTED", timeout, f"job {job_id} round {round_} assigned")
    return {e.args["worker"] for e in job_events(network, job_id, "WorkerAssigned") if int(e.args["round"]) == round_}


def wait_until_final(network, job_id: int, timeout: float = 60, advance_time_s: int = 0) -> str:
    network.wait_for(lambda: status_of(network, job_id) in ("FINALIZED", "UNRESOLVED"), timeout,
                     f"job {job_id} to finish", advance_time_s=advance_time_s)
    return status_of(network, job_id)


def slashed(network, job_id: int) -> dict[str, int]:
    """worker -> slash reason (1 wrong, 2 silent)."""
    return {e.args["worker"]: int(e.args["reason"]) for e in job_events(network, job_id, "Slashed")}


def expected_hash(program, feeds) -> str:
    from verifier import InferenceSession, execute_job

    return execute_job(program.to_bytes(), InferenceSession(program).encode_inputs(feeds)).result_hash
