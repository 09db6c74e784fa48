"""The requester SDK end to end on the embedded chain: submit → finalize → verified result, and each way
the chain and the data can disagree detected with its own exception."""

import io
import threading

import numpy as np
import onnxruntime
import pytest
from rich.console import Console

from contracts import JobStatus
from sdk import (AuthenticationError, Client, ContentMismatchError, JobFailedError, JobNotFinalizedError,
                 JobOutcomeError, ResultMismatchError)
from verifier import InferenceSession, execute_job
from verifier.encoding import decode_tensors, encode_tensors
from verifier.program import Program, ProgramNode

from evil_gateway import CorruptingGateway


def finalized_job(client, workers, model, feeds):
    job = client.submit(model, feeds, redundancy=3)
    workers.run(job.job_id)
    assert job.wait(timeout=30).status == JobStatus.FINALIZED
    return job


def test_submit_finalize_and_result_returns_the_models_outputs(client, workers, model, onnx_model, feeds):
    job = finalized_job(client, workers, model, feeds)
    (y,) = job.result(verify=True)
    (expected,) = InferenceSession(model.program).run(None, feeds)
    np.testing.assert_array_equal(y, expected)  # the same integers, decoded the same way
    (reference,) = onnxruntime.InferenceSession(onnx_model.SerializeToString()).run(None, feeds)
    assert y.shape == reference.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, reference, atol=0.05 * np.abs(reference).max())


def test_verify_reports_each_check_passing(client, workers, model, feeds):
    job = finalized_job(client, workers, model, feeds)
    verification = client.verify(job.job_id, recompute=True)
    assert verification.ok
    assert [(c.name, c.passed) for c in verification.checks] == [
        ("finalized", True), ("program", True), ("input", True), ("output", True), ("recompute", True)]


def test_anyone_holding_the_job_id_can_verify_without_a_key_or_token(chain, market_address, gateway, client,
                                                                      workers, model, feeds):
    job = finalized_job(client, workers, model, feeds)
    stranger = Client(gateway.url, rpc=chain.w3, market_address=market_address)
    assert stranger.verify(job.job_id).ok
    np.testing.assert_array_equal(stranger.job(job.job_id).result()[0], job.result()[0])


def test_gateway_serving_corrupted_output_bytes_is_detected(chain, market_address, gateway, client, workers,
                                                            model, feeds):
    job = finalized_job(client, workers, model, feeds)
    result_hash = job.info().result_hash
    with CorruptingGateway(gateway.url, corrupt={result_hash}) as evil:
        victim = Client(evil.url, rpc=chain.w3, market_address=market_address)
        with pytest.raises(ContentMismatchError) as caught:
            victim.job(job.job_id).result(verify=True)
    assert caught.value.what == "output" and caught.value.expected == result_hash
    assert "output" in str(caught.value) and result_hash in str(caught.value)


def test_gateway_serving_a_different_program_is_detected(chain, market_address, gateway, client, workers,
                                                         model, feeds):
    job = finalized_job(client, workers, model, feeds)
    with CorruptingGateway(gateway.url, corrupt={model.hash}) as evil:
        victim = Client(evil.url, rpc=chain.w3, market_address=market_address)
        verification = victim.verify(job.job_id, raise_on_failure=False)
    assert not verification.ok and isinstance(verification.error, ContentMismatchError)
    assert [(c.name, c.passed) for c in verification.checks] == [
        ("finalized", True), ("program", False), ("input", None), ("output", None), ("recompute", None)]


def test_job_that_is_not_finalized_is_detected(client, workers, model, feeds):
    # `workers` registers the staked workers a job needs to be accepted (xdist may run this test first)
    job = client.submit(model, feeds, redundancy=3)
    with pytest.raises(JobNotFinalizedError, match=f"job {job.job_id} is SUBMITTED"):
        job.result(verify=True)
    verification = client.verify(job.job_id, raise_on_failure=False)
    assert verification.checks[0].name == "finalized" and verification.checks[0].passed is False


def test_finalized_result_that_differs_from_local_execution_is_detected(client, workers, model, feeds):
    job = client.submit(model, feeds, redundancy=3)
    workers.assign(job.job_id)
    tensors = decode_tensors(workers.honest_output(job.job_id))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1  # every worker lies the same way: the chain finalizes the lie
    forged = encode_tensors(tensors)
    workers.run(job.job_id, outputs={0: forged, 1: forged, 2: forged})
    assert job.wait(timeout=30).status == JobStatus.FINALIZED
    assert client.verify(job.job_id).ok  # the bytes match the chain: only re-executing reveals the lie
    with pytest.raises(ResultMismatchError) as caught:
        job.result(verify=True, recompute=True)
    assert caught.value.expected == job.info().result_hash and caught.value.actual != caught.value.expected


def test_job_without_a_supermajority_ends_unresolved_and_result_says_so(chain, client, workers, model, feeds):
    job = client.submit(model, feeds, redundancy=3)
    workers.assign(job.job_id)
    tensors = decode_tensors(workers.honest_output(job.job_id))
    name = next(iter(tensors))
    tensors[name] = tensors[name] - 1
    workers.run(job.job_id, outputs={0: encode_tensors(tensors)})  # disagreement: a wider round is needed
    job.advance()  # finalize escalates the job to round 2, drawn from a later block
    assert job.status() == JobStatus.SUBMITTED and job.info().round == 2
    chain.mine(2)
    assert job.wait(timeout=30).status == JobStatus.UNRESOLVED  # three workers cannot fill a round of 13
    with pytest.raises(JobFailedError, match="UNRESOLVED"):
        job.result(verify=True)


def test_program_that_cannot_run_gives_a_clear_error_naming_the_op(client, workers, gateway, model, feeds):
    program = Program.from_bytes(model.program.to_bytes())
    first = program.nodes[0]
    program.nodes[0] = ProgramNode("NotAnOnnxOp", first.name, first.inputs, first.outputs, first.attrs,
                                   first.consts, first.out_fracs)
    broken = Program(program.inputs, program.outputs, program.nodes, program.constants, program.fracs, program.meta)
    path = gateway.settings.resolved_blob_dir / broken.hash[2:4] / broken.hash[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(broken.to_bytes())  # placed directly: the gateway itself refuses such uploads
    job = client.submit(broken, feeds, redundancy=3)
    workers.run(job.job_id)
    assert job.wait(timeout=30).status == JobStatus.FINALIZED
    with pytest.raises(JobOutcomeError, match="NotAnOnnxOp") as caught:
        job.result(verify=True)
    expected = execute_job(broken.to_bytes(), InferenceSession(model.program).encode_inputs(feeds))
    assert caught.value.code == expected.error_code and caught.value.reason == expected.error


def test_track_progress_draws_the_phases_and_returns_when_final(client, workers, model, feeds):
    job = client.submit(model, feeds, redundancy=3)
    out = io.StringIO()
    runner = threading.Thread(target=workers.run, args=(job.job_id,))
    runner.start()
    info = job.track_progress(timeout=60, poll_interval=0.05, console=Console(file=out, width=200))
    runner.join()
    assert info.status == JobStatus.FINALIZED
    assert f"job {job.job_id}" in out.getvalue() and "finalized" in out.getvalue()


def test_upload_model_returns_the_program_hash_and_stores_the_bytes(client, gateway, model):
    assert model.hash == model.program.hash
    assert client.gateway.get_blob(model.hash) == model.program.to_bytes()
    assert client.upload_model(model.program).hash == model.hash


def test_client_with_a_token_from_the_login_page_can_upload(chain, market_address, gateway, client):
    other = Client(gateway.url, token=client.token, rpc=chain.w3, market_address=market_address)
    assert other.gateway.me()["address"] == client.gateway.me()["address"]
    assert other.gateway.put_blob(b"some bytes")


def test_upload_without_a_token_raises_authentication_error(gateway):
    with pytest.raises(AuthenticationError, match="log in"):
        Client(gateway.url).gateway.put_blob(b"bytes")


def test_calibration_as_a_bare_array_is_taken_for_the_single_input(client, onnx_model, model):
    calibration = np.random.default_rng(2).normal(size=(64, 6)).astype(np.float32)
    assert client.upload_model(onnx_model, calibration=calibration).hash == model.hash


def test_torch_model_with_two_inputs_and_two_outputs_round_trips(client, workers):
    import io

    import onnx
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(5, 4), torch.nn.Linear(3, 4)

        def forward(self, x, z):
            h = torch.relu(self.a(x) + self.b(z))
            return h, torch.sigmoid(h).sum(dim=1, keepdim=True)

    torch.manual_seed(3)
    net = TwoHeads().eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.randn(2, 5), torch.randn(2, 3)), buffer, input_names=["x", "z"],
                      output_names=["h", "s"], dynamo=False, opset_version=17)
    rng = np.random.default_rng(4)
    calibration = {"x": rng.normal(size=(64, 5)).astype(np.float32), "z": rng.normal(size=(64, 3)).astype(np.float32)}
    feeds = {"x": rng.normal(size=(2, 5)).astype(np.float32), "z": rng.normal(size=(2, 3)).astype(np.float32)}
    model = client.upload_model(onnx.load_from_string(buffer.getvalue()), calibration=calibration)
    job = finalized_job(client, workers, model, feeds)
    h, s = job.result(verify=True)
    for got, want in zip((h, s), InferenceSession(model.program).run(None, feeds)):
        np.testing.assert_array_equal(got, want)
    with torch.no_grad():
        reference = [t.numpy() for t in net(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["z"]))]
    for got, want in zip((h, s), reference):
        np.testing.assert_allclose(got, want, atol=0.02 * max(1.0, np.abs(want).max()))
