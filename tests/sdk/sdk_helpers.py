"""Shared by the SDK tests: a small model built with onnx, and workers simulated through the binding."""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contracts import JobStatus, MarketClient, MarketError, make_commitment
from sdk import GatewayClient
from verifier import execute_job

STAKE = 10**18


def small_mlp() -> onnx.ModelProto:
    """x[2,6] -> Gemm -> Relu -> Gemm -> y[2,3]: the shape of a tiny classifier."""
    rng = np.random.default_rng(7)
    w1, b1 = rng.normal(size=(6, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    w2, b2 = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])],
        "small_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class SimulatedWorkers:
    """Staked workers played by the test: they fetch the job's bytes from the gateway, run the verifier,
    publish the output, then commit and reveal through the binding."""

    def __init__(self, chain, market_address, gateway_url, accounts):
        self.chain = chain
        self.clients = {}
        for account in accounts:
            client = MarketClient(chain.w3, market_address, account)
            client.register(STAKE)
            self.clients[account.address] = client
        self.gateway = GatewayClient(gateway_url)
        self.gateway.login(next(iter(self.clients.values())).account, chain_id=chain.w3.eth.chain_id)

    def assign(self, job_id: int) -> list[str]:
        """Draw the job's workers (once; mining the seed block first if needed) and return them."""
        any_client = next(iter(self.clients.values()))
        if any_client.job_status(job_id) == JobStatus.SUBMITTED:
            if not any_client.can_assign(job_id):
                self.chain.mine(2)
            try:
                any_client.assign(job_id)
            except MarketError:  # the requester's client assigned it first
                assert any_client.job_status(job_id) != JobStatus.SUBMITTED
        return any_client.assigned_workers(job_id)

    def honest_output(self, job_id: int) -> bytes:
        job = next(iter(self.clients.values())).get_job(job_id)
        outcome = execute_job(self.gateway.get_blob(job.program_hash), self.gateway.get_blob(job.input_hash))
        return outcome.output_bytes

    def run(self, job_id: int, outputs: dict[int, bytes] | None = None) -> None:
        """Assign, then each assigned worker commits and reveals the keccak of its output bytes (the honest
        output unless `outputs[i]` overrides worker i's), publishing those bytes first."""
        assigned = self.assign(job_id)
        honest = self.honest_output(job_id)
        chosen = [(outputs or {}).get(i, honest) for i in range(len(assigned))]
        salts = [os.urandom(32) for _ in assigned]
        published = {data: self.gateway.put_blob(data) for data in set(chosen)}
        hashes = [published[data] for data in chosen]
        for address, result_hash, salt in zip(assigned, hashes, salts):
            self.clients[address].commit(job_id, make_commitment(job_id, result_hash, salt, address))
        for address, result_hash, salt in zip(assigned, hashes, salts):
            self.clients[address].reveal(job_id, result_hash, salt)
