"""The honest and lying scenarios on anvil, with the gateway and every worker as separate processes
(JSON-RPC and HTTP between them, as in a deployment)."""

from __future__ import annotations

import pytest

from e2e_helpers import ESCALATION_PARAMS

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def anvil_ready():
    from worker.devnet import anvil_unavailable_reason

    reason = anvil_unavailable_reason()
    if reason:
        pytest.skip(f"anvil unavailable: {reason}")


def _client(net):
    from sdk import Client

    return Client.login(net.gateway_url, net.rpc_url, net.requester.key, net.market_address)


def _slashed(net, job_id: int) -> dict[str, int]:
    from contracts import MarketClient

    events = MarketClient(net.w3, net.market_address, net.requester).events(job_id=job_id, names=("Slashed",))
    return {e.args["worker"]: int(e.args["reason"]) for e in events}


def test_honest_worker_processes_finalize_a_verified_job_on_anvil(anvil_ready, tmp_path, program, feeds):
    from verifier import InferenceSession
    from worker.devnet import Devnet

    with Devnet(workers=3, data_dir=tmp_path) as net:
        client = _client(net)
        job = client.submit(client.upload_model(program), feeds, redundancy=3)
        info = job.wait(timeout=90, poll_interval=0.3)
        assert info.status.name == "FINALIZED", net.log("worker-0")[-2000:]
        outputs = job.result(verify=True, recompute=True)
        assert (outputs[0] == InferenceSession(program).run(None, feeds)[0]).all()
        assert _slashed(net, job.job_id) == {}


def test_lying_worker_process_is_slashed_on_anvil_and_the_result_stays_correct(anvil_ready, tmp_path, program, feeds):
    from worker.devnet import Devnet

    with Devnet(workers=0, data_dir=tmp_path, market_params=ESCALATION_PARAMS) as net:
        first = [net.add_worker(start=False), net.add_worker(start=False), net.add_worker("lie", start=False)]
        client = _client(net)
        job = client.submit(client.upload_model(program), feeds, redundancy=3)
        net_wait(lambda: job.advance() or job.status().name != "SUBMITTED", 60)
        for _ in range(3):  # the wide round's workers, registered before round 1 can finish
            net.add_worker()
        for index in first:
            net.start_worker(index)
        info = job.wait(timeout=120, poll_interval=0.3)
        assert info.status.name == "FINALIZED" and info.round == 2, net.log("worker-2")[-2000:]
        job.result(verify=True, recompute=True)
        assert _slashed(net, job.job_id) == {net.worker_accounts[first[2]].address: 1}


def net_wait(predicate, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_worker_cli_registers_reports_unbonds_and_refuses_early_withdrawal_on_anvil(anvil_ready, tmp_path):
    from typer.testing import CliRunner

    from sdk.cli import app
    from worker.devnet import Devnet, dev_account

    with Devnet(workers=0, data_dir=tmp_path) as net:
        account = dev_account(3)  # funded by anvil, not used by this devnet
        env = {"VINFER_RPC_URL": net.rpc_url, "VINFER_MARKET": net.market_address,
               "VINFER_WORKER_KEY": "0x" + bytes(account.key).hex(), "VINFER_KEYSTORE": ""}
        runner = CliRunner()
        registered = runner.invoke(app, ["worker", "register", "--stake", "1.5ether"], env=env)
        assert registered.exit_code == 0, registered.output
        assert "stake=1500000000000000000 wei" in registered.output
        status = runner.invoke(app, ["worker", "status"], env=env)
        assert status.exit_code == 0, status.output
        assert "active             True" in status.output and "open assignments   none" in status.output
        assert runner.invoke(app, ["worker", "unbond"], env=env).exit_code == 0
        early = runner.invoke(app, ["worker", "withdraw", "--stake"], env=env)
        assert early.exit_code == 1
        assert "UnbondingNotFinished" in early.output
        nothing = runner.invoke(app, ["worker", "withdraw"], env=env)
        assert nothing.exit_code == 1 and "nothing to withdraw" in nothing.output


def test_devnet_command_starts_everything_and_ctrl_c_stops_it_all(anvil_ready, tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time

    from worker.devnet import free_port

    rpc_port, gateway_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-c", "from sdk.cli import main; main()", "devnet", "--workers", "2",
                                "--rpc-port", str(rpc_port), "--gateway-port", str(gateway_port), "--data-dir", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 90
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        banner = "".join(lines)
        assert f"http://127.0.0.1:{rpc_port}" in banner and "market" in banner and "vinfer submit" in banner
        logs = [tmp_path / "logs" / f"worker-{i}.log" for i in range(2)]
        while not all(log.exists() and "phase=start" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "the worker processes did not start"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()

    def listening(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    assert not listening(rpc_port) and not listening(gateway_port)
    worker_logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert worker_logs == ["anvil.log", "gateway.log", "worker-0.log", "worker-1.log"]
    assert "phase=stop" in (tmp_path / "logs" / "worker-0.log").read_text()
