"""The worker's command line: user mistakes get a clear message and a non-zero exit."""

from typer.testing import CliRunner

from sdk.cli import app

runner = CliRunner()


def invoke(*args, env=None):
    base = {"VINFER_WORKER_KEY": "", "VINFER_RPC_URL": "", "VINFER_MARKET": "", "VINFER_GATEWAY_URL": "", "VINFER_KEYSTORE": ""}
    return runner.invoke(app, list(args), env={**base, **(env or {})})


def test_worker_commands_are_listed():
    result = invoke("worker", "--help")
    assert result.exit_code == 0
    for command in ("register", "run", "status", "unbond", "withdraw"):
        assert command in result.output


def test_private_key_is_not_accepted_as_a_flag():
    result = invoke("worker", "run", "--private-key", "0x01")
    assert result.exit_code != 0


def test_register_with_unreadable_stake_fails_clearly():
    result = invoke("worker", "register", "--stake", "lots")
    assert result.exit_code == 1
    assert "cannot read amount" in result.output


def test_run_without_gateway_names_the_missing_setting():
    result = invoke("worker", "run")
    assert result.exit_code == 1
    assert "--gateway" in result.output


def test_run_without_key_names_both_ways_to_provide_it():
    result = invoke("worker", "run", "--gateway", "http://127.0.0.1:9", "--rpc", "http://127.0.0.1:9", "--market", "0x" + "00" * 20)
    assert result.exit_code == 1
    assert "VINFER_WORKER_KEY" in result.output


def test_unknown_byzantine_mode_is_refused():
    result = invoke("worker", "run", "--byzantine", "sometimes")
    assert result.exit_code == 1
    assert "lie, silent" in result.output


def test_unreachable_chain_is_a_clear_error():
    key = "0x" + "11" * 32
    result = invoke("worker", "unbond", "--rpc", "http://127.0.0.1:9", "--market", "0x" + "00" * 20, env={"VINFER_WORKER_KEY": key})
    assert result.exit_code == 1
    assert "cannot reach the chain" in result.output


def test_new_key_writes_a_keystore_the_worker_can_load(tmp_path, monkeypatch):
    from worker.config import load_account

    path = tmp_path / "worker.json"
    result = invoke("worker", "new-key", "--keystore", str(path), env={"VINFER_KEYSTORE_PASSWORD": "pw"})
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("VINFER_KEYSTORE_PASSWORD", "pw")
    assert load_account(path).address in result.output
    again = invoke("worker", "new-key", "--keystore", str(path), env={"VINFER_KEYSTORE_PASSWORD": "pw"})
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
