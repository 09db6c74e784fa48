"""The requester's command line against a real JSON-RPC chain (anvil), a real gateway and workers
simulated through the binding: login, submit, status, result, verify, and clear failures."""

import json
import re
import stat
import threading
import time

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from contracts import deploy_market
from contracts.anvil import anvil_binary
from gateway.server import serve_in_thread
from gateway.settings import GatewaySettings
from sdk.cli import app
from sdk_helpers import SimulatedWorkers, small_mlp
from verifier import InferenceSession, compile_model

pytestmark = pytest.mark.anvil
if anvil_binary() is None:
    pytest.skip("anvil is not installed (npm ci --prefix contracts)", allow_module_level=True)

runner = CliRunner()


@pytest.fixture(scope="module")
def anvil():
    from contracts.anvil import AnvilChain

    with AnvilChain(num_accounts=6) as chain:
        yield chain


@pytest.fixture(scope="module")
def network(anvil, tmp_path_factory):
    market = deploy_market(anvil.w3, anvil.accounts[0]).address
    settings = GatewaySettings(port=0, data_dir=tmp_path_factory.mktemp("gateway"), rpc_url=anvil.url,
                               market_address=market)
    with serve_in_thread(settings) as server:
        workers = SimulatedWorkers(anvil, market, server.url, anvil.accounts[1:4])
        yield {"gateway": server.url, "rpc": anvil.url, "market": market, "workers": workers,
               "key": "0x" + bytes(anvil.accounts[5].key).hex(), "address": anvil.accounts[5].address}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    onnx.save(small_mlp(), folder / "mlp.onnx")
    rng = np.random.default_rng(5)
    np.savez(folder / "x.npz", x=rng.normal(size=(2, 6)).astype(np.float32))
    np.savez(folder / "calib.npz", x=rng.normal(size=(64, 6)).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("config")


def vinfer(*args, key=None, config_dir=None):
    env = {"VINFER_PRIVATE_KEY": key or "", "VINFER_CONFIG_DIR": str(config_dir or "/nonexistent"),
           "VINFER_GATEWAY_URL": "", "VINFER_RPC_URL": "", "VINFER_MARKET": ""}
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def logged_in(network, config_dir):
    result = vinfer("login", "--gateway", network["gateway"], "--rpc", network["rpc"], "--market", network["market"],
                    key=network["key"], config_dir=config_dir)
    assert result.exit_code == 0, result.output
    return config_dir


@pytest.fixture(scope="module")
def finalized_job(network, logged_in, files):
    result = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", "--calibrate", files / "calib.npz",
                    key=network["key"], config_dir=logged_in)
    assert result.exit_code == 0, result.output
    job_id = int(re.search(r"submitted job (\d+)", result.output).group(1))
    workers = network["workers"]
    workers.run(job_id)
    next(iter(workers.clients.values())).finalize(job_id)
    return job_id


def test_login_saves_a_working_token_readable_only_by_its_owner(network, logged_in):
    path = logged_in / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["address"] == network["address"] and saved["market"] == network["market"]
    from sdk import GatewayClient

    assert GatewayClient(network["gateway"], saved["token"]).me()["address"] == network["address"]


def test_login_with_a_token_from_the_login_page(network, logged_in, tmp_path):
    token = json.loads((logged_in / "config.json").read_text())["token"]
    result = vinfer("login", "--gateway", network["gateway"], "--token", token, config_dir=tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "config.json").read_text())["token"] == token


def test_login_without_a_key_or_token_fails_clearly(network, tmp_path):
    result = vinfer("login", "--gateway", network["gateway"], config_dir=tmp_path)
    assert result.exit_code == 1 and "VINFER_PRIVATE_KEY" in result.output
    assert not (tmp_path / "config.json").exists()


def test_login_with_a_bad_token_fails_clearly(network, tmp_path):
    result = vinfer("login", "--gateway", network["gateway"], "--token", "v1.forged.token", config_dir=tmp_path)
    assert result.exit_code == 1 and "401" in result.output


def test_result_saves_the_verified_outputs(network, logged_in, finalized_job, files, tmp_path):
    out = tmp_path / "y.npz"
    result = vinfer("result", finalized_job, "-o", out, config_dir=logged_in)
    assert result.exit_code == 0, result.output
    program = InferenceSession(files / "mlp.onnx", calibration=dict(np.load(files / "calib.npz")))
    (expected,) = program.run(None, dict(np.load(files / "x.npz")))
    np.testing.assert_array_equal(np.load(out)["y"], expected)


def test_status_shows_the_final_state_and_history(logged_in, finalized_job):
    result = vinfer("status", finalized_job, config_dir=logged_in)
    assert result.exit_code == 0, result.output
    assert "FINALIZED" in result.output and "JobSubmitted" in result.output and "JobFinalized" in result.output


def test_verify_prints_every_check_and_exits_zero_when_all_pass(logged_in, finalized_job):
    result = vinfer("verify", finalized_job, "--recompute", config_dir=logged_in)
    assert result.exit_code == 0, result.output
    for check in ("finalized", "program", "input", "output", "recompute"):
        assert check in result.output
    assert "FAIL" not in result.output and "all checks passed" in result.output


def test_verify_of_a_job_that_is_not_finalized_exits_one(network, logged_in, files):
    submitted = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", "--calibrate",
                       files / "calib.npz", key=network["key"], config_dir=logged_in)
    job_id = int(re.search(r"submitted job (\d+)", submitted.output).group(1))
    result = vinfer("verify", job_id, config_dir=logged_in)
    assert result.exit_code == 1 and "FAIL" in result.output and "not FINALIZED" in result.output


def test_a_job_with_8_bit_products_runs_finalizes_and_verifies(network, logged_in, files):
    submitted = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", "--calibrate", files / "calib.npz",
                       "--matmul-bits", "8", key=network["key"], config_dir=logged_in)
    assert submitted.exit_code == 0, submitted.output
    with np.load(files / "calib.npz") as data:
        program = compile_model(files / "mlp.onnx", calibration={"x": data["x"]}, matmul_bits=8)
    assert program.meta["matmul_bits"] == 8 and program.hash in submitted.output
    job_id = int(re.search(r"submitted job (\d+)", submitted.output).group(1))
    workers = network["workers"]
    workers.run(job_id)
    next(iter(workers.clients.values())).finalize(job_id)
    result = vinfer("verify", job_id, "--recompute", config_dir=logged_in)
    assert result.exit_code == 0 and "all checks passed" in result.output, result.output


def test_submit_with_another_operand_width_fails_before_uploading(network, logged_in, files):
    result = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", "--matmul-bits", "4",
                    key=network["key"], config_dir=logged_in)
    assert result.exit_code == 1 and "--matmul-bits must be one of 16, 8" in result.output


def test_submit_without_a_key_fails_clearly(logged_in, files):
    result = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", config_dir=logged_in)
    assert result.exit_code == 1 and "VINFER_PRIVATE_KEY" in result.output


def test_submit_with_an_unreadable_input_file_fails_clearly(network, logged_in, files, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    result = vinfer("submit", files / "mlp.onnx", "--input", bad, key=network["key"], config_dir=logged_in)
    assert result.exit_code == 1 and "cannot read --input" in result.output


def test_status_of_a_job_that_does_not_exist_fails_clearly(logged_in):
    result = vinfer("status", 99999, config_dir=logged_in)
    assert result.exit_code == 1 and "no job 99999" in result.output


def test_commands_without_settings_name_what_is_missing(tmp_path):
    result = vinfer("status", 1, config_dir=tmp_path)
    assert result.exit_code == 1 and "--gateway" in result.output


def test_gateway_command_needs_rpc_and_market_together(tmp_path):
    result = vinfer("gateway", "--rpc", "http://127.0.0.1:9", "--data-dir", tmp_path)
    assert result.exit_code == 1 and "--market" in result.output


def test_submit_with_wait_follows_the_job_and_prints_the_outputs(network, logged_in, files):
    workers = network["workers"]
    market = next(iter(workers.clients.values()))
    before = market.job_count()

    def work_when_submitted():
        deadline = time.monotonic() + 60
        while market.job_count() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        workers.run(before + 1)

    helper = threading.Thread(target=work_when_submitted)
    helper.start()
    result = vinfer("submit", files / "mlp.onnx", "--input", files / "x.npz", "--calibrate", files / "calib.npz",
                    "--wait", key=network["key"], config_dir=logged_in)
    helper.join()
    assert result.exit_code == 0, result.output
    assert f"job {before + 1} is FINALIZED" in result.output and "y: shape (2, 3)" in result.output
