"""The whole system in one process (py-evm chain, real gateway, worker threads), scenario by scenario."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

from verifier.encoding import decode_tensors

from e2e_helpers import (expected_hash, job_events, slashed, status_of, wait_until_assigned, wait_until_final)


def _result_hash(network, job_id: int) -> str:
    value = network.client(network.requester).get_job(job_id).result_hash
    return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).lower()


def _pass_deadline(network, deadline: int) -> None:
    now = network.w3.eth.get_block("latest")["timestamp"]
    if now <= deadline:
        network.chain.time_travel(int(deadline - now + 1))


def _escalate_with_fresh_workers(network, job_id: int, count: int = 3) -> None:
    """Register the wide round's workers only now, so round 1 was exactly the first three."""
    for _ in range(count):
        network.add_worker()

def _run_round_one_worker_short(network, job_id: int) -> str:
    """Round 1 of three where one worker never commits: wait for the other two commits, add fresh workers for
    the escalation, let both deadlines pass with the two reveals in, and return the job's final status."""
    network.wait_for(lambda: len(job_events(network, job_id, "Committed")) == 2, 30, "two commits")
    _escalate_with_fresh_workers(network, job_id)
    client = network.client(network.requester)
    _pass_deadline(network, client.get_job(job_id).commit_deadline)
    network.wait_for(lambda: len(job_events(network, job_id, "Revealed")) == 2, 30, "two reveals")
    _pass_deadline(network, client.get_job(job_id).reveal_deadline)
    return wait_until_final(network, job_id)



def test_honest_workers_finalize_and_the_sdk_verifies_the_result(network, requester, program, feeds):
    for _ in range(3):
        network.add_worker()
    model = requester.upload_model(program)
    job = requester.submit(model, feeds, redundancy=3)
    assert wait_until_final(network, job.job_id) == "FINALIZED"
    assert _result_hash(network, job.job_id) == expected_hash(program, feeds)
    outputs = job.result(verify=True)
    from verifier import InferenceSession

    np.testing.assert_array_equal(outputs[0], InferenceSession(program).run(None, feeds)[0])
    assert slashed(network, job.job_id) == {}
    assert len(job_events(network, job.job_id, "Revealed")) == 3


def test_lying_worker_is_slashed_and_the_result_stays_correct(network, requester, program, feeds):
    honest = [network.add_worker(start=False), network.add_worker(start=False)]
    liar = network.add_worker(byzantine="lie", start=False)
    job = requester.submit(requester.upload_model(program), feeds, redundancy=3)
    assert wait_until_assigned(network, job.job_id, job=job) == {w.address for w in (*honest, liar)}
    _escalate_with_fresh_workers(network, job.job_id)
    for handle in (*honest, liar):  # round 1 can only finish (and escalate) once the wide round's workers exist
        network.start_worker(handle)
    assert wait_until_final(network, job.job_id) == "FINALIZED"
    assert network.client(network.requester).get_job(job.job_id).round == 2
    assert _result_hash(network, job.job_id) == expected_hash(program, feeds)
    assert slashed(network, job.job_id) == {liar.address: 1}
    job.result(verify=True)
    from worker.report import worker_report

    liar_report = worker_report(network.client(liar.account), liar.address)
    honest_report = worker_report(network.client(honest[0].account), honest[0].address)
    assert liar_report["slashed (wei)"] > 0 and liar_report["earned (wei)"] == 0
    assert honest_report["earned (wei)"] > 0 and honest_report["slashed (wei)"] == 0
    assert honest_report["pending (wei)"] == honest_report["earned (wei)"]


def test_silent_worker_is_slashed_after_the_deadline(network, requester, program, feeds):
    for _ in range(2):
        network.add_worker()
    silent = network.add_worker(byzantine="silent")
    job = requester.submit(requester.upload_model(program), feeds, redundancy=3)
    wait_until_assigned(network, job.job_id)
    assert _run_round_one_worker_short(network, job.job_id) == "FINALIZED"
    assert _result_hash(network, job.job_id) == expected_hash(program, feeds)
    assert slashed(network, job.job_id) == {silent.address: 2}


def test_worker_killed_between_commit_and_reveal_reveals_after_restart(network, requester, program, feeds):
    victim_ready = threading.Event()
    others = [network.add_worker(), network.add_worker()]
    victim = network.add_worker(start=False)

    def crash_after_commit(event):
        if event["phase"] == "commit" and event["worker"] == victim.address:
            victim.node.stop()  # the node dies right after its commit, before any reveal
            victim_ready.set()

    network.on_event = crash_after_commit
    network.start_worker(victim)
    job = requester.submit(requester.upload_model(program), feeds, redundancy=3)
    assert victim_ready.wait(30), "the victim never committed"
    network.stop_worker(victim)
    network.wait_for(lambda: len(job_events(network, job.job_id, "Revealed")) == 2, 30, "the other two reveals")
    assert status_of(network, job.job_id) == "REVEALING"
    network.start_worker(victim)  # a new node object; only the state file carries over
    assert wait_until_final(network, job.job_id) == "FINALIZED"
    assert victim.address in {e.args["worker"] for e in job_events(network, job.job_id, "Revealed")}
    assert slashed(network, job.job_id) == {}
    assert len(others) == 2


class CorruptingProxy:
    """A gateway in front of the real one that flips the last byte of every input blob it serves."""

    def __init__(self, upstream: str):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                response = httpx.get(upstream + self.path)
                body = response.content
                if response.status_code == 200 and self.path.startswith("/blobs/") and body and not body.startswith(b"VFP"):
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(response.status_code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_worker_behind_a_corrupting_gateway_refuses_to_commit_and_the_job_still_finalizes(network, requester, program, feeds):
    proxy = CorruptingProxy(network.gateway_url)
    try:
        network.add_worker(), network.add_worker()
        fooled = network.add_worker(gateway_url=proxy.url)
        job = requester.submit(requester.upload_model(program), feeds, redundancy=3)
        wait_until_assigned(network, job.job_id)
        network.wait_for(lambda: any(e["phase"] == "refuse" for e in fooled.events), 30, "the refusal")
        assert _run_round_one_worker_short(network, job.job_id) == "FINALIZED"
        assert fooled.address not in {e.args["worker"] for e in job_events(network, job.job_id, "Committed")}
        assert _result_hash(network, job.job_id) == expected_hash(program, feeds)
        job.result(verify=True)
    finally:
        proxy.server.shutdown()


def _program_with_unknown_op(program):
    from verifier.program import Program

    broken = Program.from_bytes(program.to_bytes())
    broken.nodes[-1].op = "NotAnOnnxOp"
    broken._bytes = None
    return broken


def _place_in_store(network, program) -> None:
    from gateway.store import BlobStore

    store = BlobStore(network.gateway.settings.resolved_blob_dir, network.gateway.settings.max_blob_bytes)
    path = store.path_for(program.hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(program.to_bytes())


def test_job_with_an_unsupported_op_finalizes_as_the_same_error_outcome_everywhere(network, requester, program, feeds):
    """The gateway refuses such programs, but a job may name any hash (e.g. a program published through
    another gateway): the blob is placed in this gateway's store directly, as a second gateway would."""
    from verifier import InferenceSession, execute_job

    for _ in range(3):
        network.add_worker()
    broken = _program_with_unknown_op(program)
    _place_in_store(network, broken)
    input_bytes = InferenceSession(program).encode_inputs(feeds)
    job = requester.submit(broken, feeds, redundancy=3)
    assert wait_until_final(network, job.job_id) == "FINALIZED"
    outcome = execute_job(broken.to_bytes(), input_bytes)
    assert not outcome.ok and "NotAnOnnxOp" in outcome.error
    assert {e.args["resultHash"] for e in job_events(network, job.job_id, "Revealed")} == {outcome.result_hash}
    assert slashed(network, job.job_id) == {}
    verification = requester.verify(job.job_id)  # the chain and the published bytes agree on the error outcome
    assert verification.ok and verification.output_bytes == outcome.output_bytes
    error = decode_tensors(verification.output_bytes)
    assert list(error) == ["vinfer.error"] and error["vinfer.error"].tolist() == [outcome.error_code]


def test_sdk_reports_an_error_outcome_as_a_clear_error(network, requester, program, feeds):
    for _ in range(3):
        network.add_worker()
    broken = _program_with_unknown_op(program)
    _place_in_store(network, broken)
    job = requester.submit(broken, feeds, redundancy=3)
    assert wait_until_final(network, job.job_id) == "FINALIZED"
    from sdk import errors as sdk_errors

    with pytest.raises(sdk_errors.VinferError, match="NotAnOnnxOp|unsupported op"):
        job.result(verify=True)
