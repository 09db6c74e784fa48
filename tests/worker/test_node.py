"""Worker nodes on a real embedded chain and a real gateway, with the test as the requester
(through the contract binding and plain HTTP, so these tests do not depend on the SDK)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
from eth_account.messages import encode_defunct

from e2e.e2e_helpers import tiny_model
from worker.blobs import GatewayBlobs
from worker.node import NodeConfig, WorkerNode
from worker.state import WorkerState

ETHER = 10**18


def siwe_token(gateway_url: str, account) -> str:
    from siwe import SiweMessage

    info = httpx.get(f"{gateway_url}/auth/nonce").json()
    now = datetime.now(timezone.utc)
    stamp = lambda t: t.isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: E731
    message = SiweMessage(domain=info["domain"], address=account.address, uri=info["uri"], version="1",
                          chain_id=info["chain_id"], nonce=info["nonce"], issued_at=stamp(now),
                          expiration_time=stamp(now + timedelta(minutes=5))).prepare_message()
    signature = account.sign_message(encode_defunct(text=message)).signature.hex()
    response = httpx.post(f"{gateway_url}/auth/login", json={"message": message, "signature": "0x" + signature.removeprefix("0x")})
    response.raise_for_status()
    return response.json()["token"]


@pytest.fixture(scope="module")
def job_blobs():
    from verifier import InferenceSession, compile_model, execute_job

    rng = np.random.default_rng(0)
    program = compile_model(tiny_model(), calibration={"x": rng.standard_normal((16, 8)).astype(np.float32)})
    inputs = InferenceSession(program).encode_inputs({"x": rng.standard_normal((2, 8)).astype(np.float32)})
    return program.to_bytes(), inputs, execute_job(program.to_bytes(), inputs).result_hash


@pytest.fixture
def world(tmp_path):
    from contracts import MarketClient, deploy_market
    from contracts.chain import EmbeddedChain
    from gateway.server import serve_in_thread
    from gateway.settings import GatewaySettings

    chain = EmbeddedChain()
    market = deploy_market(chain.w3, chain.accounts[0], growth=1)
    gateway = serve_in_thread(GatewaySettings(host="127.0.0.1", port=0, data_dir=tmp_path / "gw"), w3=chain.w3)
    stop = threading.Event()
    nodes, threads = [], []

    def start_worker(index: int, register: bool = True, wrap=None, **config):
        account = chain.accounts[2 + index]
        client = MarketClient(chain.w3, market.address, account)
        if wrap is not None:
            client = wrap(client)
        if register:
            client.register(ETHER)
        token = siwe_token(gateway.url, client.account)
        node = WorkerNode(client, GatewayBlobs(gateway.url, token=lambda: token, backoff_s=0.01),
                          WorkerState(tmp_path / f"w{index}.db"),
                          NodeConfig(**{"poll_interval_s": 0.05, "executor": "thread", "housekeeping_jitter_s": 0.1, **config}))
        thread = threading.Thread(target=node.run, args=(stop,), daemon=True)
        thread.start()
        nodes.append(node)
        threads.append(thread)
        return node

    def miner():
        while not stop.wait(0.2):
            chain.mine(1)

    threading.Thread(target=miner, daemon=True).start()
    requester = MarketClient(chain.w3, market.address, chain.accounts[1])
    yield type("World", (), {"chain": chain, "gateway": gateway, "requester": requester, "start_worker": staticmethod(start_worker),
                             "token": siwe_token(gateway.url, chain.accounts[1]), "nodes": nodes})
    stop.set()
    for thread in threads:
        thread.join(5)
    gateway.stop()


def _upload(world, data: bytes) -> str:
    response = httpx.put(f"{world.gateway.url}/blobs", content=data, headers={"Authorization": f"Bearer {world.token}"})
    response.raise_for_status()
    return response.json()["hash"]


def _wait(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_nodes_assign_compute_commit_reveal_finalize_and_publish_the_output(world, job_blobs):
    program, inputs, expected = job_blobs
    for index in range(3):
        world.start_worker(index)
    job_id = world.requester.submit_job(_upload(world, program), _upload(world, inputs), 3, 10**15)
    # nobody but the workers calls assign and finalize here
    _wait(lambda: world.requester.job_status(job_id).name == "FINALIZED", what="finalization")
    assert world.requester.get_job(job_id).result_hash == expected
    _wait(lambda: httpx.head(f"{world.gateway.url}/blobs/{expected}").status_code == 200, what="the output upload")
    assert all(world.requester.pending_withdrawal(node.address) > 0 for node in world.nodes)


def test_node_restarted_from_its_state_file_catches_up_on_missed_events(world, job_blobs, tmp_path):
    program, inputs, expected = job_blobs
    for index in range(2):
        world.start_worker(index)
    from contracts import MarketClient

    late = MarketClient(world.chain.w3, world.requester.address, world.chain.accounts[4])
    late.register(ETHER)
    state = WorkerState(tmp_path / "w2.db")
    state.bind_address(late.account.address)
    state.last_block = world.chain.block_number  # it had processed everything up to now, then went down
    state.close()
    job_id = world.requester.submit_job(_upload(world, program), _upload(world, inputs), 3, 10**15)
    _wait(lambda: world.requester.job_status(job_id).name == "COMMITTING", what="assignment")
    world.chain.mine(3)
    world.start_worker(2, register=False)  # reads the WorkerAssigned event it missed
    _wait(lambda: world.requester.job_status(job_id).name == "FINALIZED", what="finalization")
    assert world.requester.get_job(job_id).result_hash == expected


class LosesFirstCommitResponse:
    """The RPC node takes the first commit but the answer never arrives (a dropped connection)."""

    def __init__(self, client):
        self._client, self.lost = client, 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def commit(self, *args):
        receipt = self._client.commit(*args)
        if not self.lost:
            self.lost += 1
            raise ConnectionError("connection reset before the receipt arrived")
        return receipt


def test_commit_whose_response_was_lost_is_not_sent_twice(world, job_blobs):
    program, inputs, expected = job_blobs
    flaky = []
    world.start_worker(0, wrap=lambda c: flaky.append(LosesFirstCommitResponse(c)) or flaky[-1])
    world.start_worker(1)
    world.start_worker(2)
    job_id = world.requester.submit_job(_upload(world, program), _upload(world, inputs), 3, 10**15)
    _wait(lambda: world.requester.job_status(job_id).name == "FINALIZED", what="finalization")
    assert flaky[0].lost == 1
    commits = [e.args["worker"] for e in world.requester.events(job_id=job_id, names=("Committed",))]
    assert sorted(commits) == sorted(node.address for node in world.nodes)
    assert world.requester.get_job(job_id).result_hash == expected


def test_a_memory_error_while_computing_is_retried_not_committed(world, job_blobs, monkeypatch):
    """Running out of memory is the machine's fault, not the job's (verifier.execute_job lets it propagate):
    the node commits nothing for that attempt and computes again on a later poll."""
    import worker.slot as slot

    program, inputs, expected = job_blobs
    real_execute, failures = slot.execute, []

    def execute_once_out_of_memory(program_bytes, input_bytes):
        if not failures:
            failures.append(1)
            raise MemoryError("simulated: this machine ran out of memory")
        return real_execute(program_bytes, input_bytes)

    monkeypatch.setattr(slot, "execute", execute_once_out_of_memory)
    for index in range(3):
        world.start_worker(index)
    job_id = world.requester.submit_job(_upload(world, program), _upload(world, inputs), 3, 10**15)
    _wait(lambda: world.requester.job_status(job_id).name == "FINALIZED", what="finalization")
    assert failures and world.requester.get_job(job_id).result_hash == expected
    assert all(world.requester.pending_withdrawal(node.address) > 0 for node in world.nodes)  # nobody slashed


def test_a_slot_process_killed_by_the_os_is_replaced_and_the_job_still_finalizes(world, job_blobs):
    """A slot process that dies (the OOM killer, say) breaks the process pool; the node starts fresh slots
    and computes the job on a later poll instead of staying silent and being slashed."""
    import os
    import signal

    program, inputs, expected = job_blobs
    victim = world.start_worker(0, executor="process", slots=1)
    pid = victim._processes.submit(os.getpid).result(timeout=60)
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: victim._processes._broken, what="the pool to notice its dead slot")
    for index in range(1, 3):
        world.start_worker(index)
    job_id = world.requester.submit_job(_upload(world, program), _upload(world, inputs), 3, 10**15)
    _wait(lambda: world.requester.job_status(job_id).name == "FINALIZED", timeout=90, what="finalization")
    assert world.requester.get_job(job_id).result_hash == expected
    assert world.requester.pending_withdrawal(victim.address) > 0  # it revealed the agreed result: paid, not slashed
