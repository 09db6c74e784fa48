"""`vinfer chain deploy|info`: keys from the environment or a keystore, clear errors, a real deployment on anvil."""

from __future__ import annotations

import json

import pytest
import typer
from eth_account import Account
from typer.testing import CliRunner

from contracts import MarketClient, cli


@pytest.fixture
def app():
    root = typer.Typer()

    @root.callback()
    def _root():
        """test root"""

    cli.register(root)
    return root


def test_deploy_without_a_key_fails_with_a_message(app, monkeypatch):
    monkeypatch.delenv("VINFER_PRIVATE_KEY", raising=False)
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "VINFER_PRIVATE_KEY" in result.output


def test_deploy_with_a_malformed_key_fails_with_a_message(app, monkeypatch):
    monkeypatch.setenv("VINFER_PRIVATE_KEY", "not-a-key")
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", "http://127.0.0.1:1"])
    assert result.exit_code == 1 and "not a valid private key" in result.output


def test_deploy_to_an_unreachable_node_fails_with_a_message(app, monkeypatch):
    monkeypatch.setenv("VINFER_PRIVATE_KEY", "0x" + "11" * 32)
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", "http://127.0.0.1:1"])
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_bad_parameter_override_is_refused(app, monkeypatch):
    monkeypatch.setenv("VINFER_PRIVATE_KEY", "0x" + "11" * 32)
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", "http://x", "--param", "min_stake=abc"])
    assert result.exit_code == 1 and "bad --param" in result.output


def test_deploy_on_anvil_prints_a_working_market_address(app, anvil_chain, monkeypatch):
    monkeypatch.setenv("VINFER_PRIVATE_KEY", anvil_chain.accounts[0].key.hex())
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", anvil_chain.url, "--param", "growth=3"])
    assert result.exit_code == 0, result.output
    address = result.output.strip()
    client = MarketClient(anvil_chain.w3, address, anvil_chain.accounts[1])
    assert client.params()["growth"] == 3
    info = CliRunner().invoke(app, ["chain", "info", "--rpc", anvil_chain.url, "--market", address])
    assert info.exit_code == 0 and "growth" in info.output and "active_workers" in info.output


def test_deploy_with_a_keystore_file(app, anvil_chain, tmp_path, monkeypatch):
    monkeypatch.delenv("VINFER_PRIVATE_KEY", raising=False)
    keystore = tmp_path / "deployer.json"
    keystore.write_text(json.dumps(Account.encrypt(anvil_chain.accounts[2].key, "pw", iterations=2)))
    monkeypatch.setenv("VINFER_KEYSTORE_PASSWORD", "pw")
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", anvil_chain.url, "--keystore", str(keystore)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("VINFER_KEYSTORE_PASSWORD", "wrong")
    result = CliRunner().invoke(app, ["chain", "deploy", "--rpc", anvil_chain.url, "--keystore", str(keystore)])
    assert result.exit_code == 1 and "cannot decrypt" in result.output


def test_info_on_an_address_without_code_fails_with_a_message(app, anvil_chain):
    result = CliRunner().invoke(app, ["chain", "info", "--rpc", anvil_chain.url, "--market", "0x" + "00" * 19 + "01"])
    assert result.exit_code == 1 and "no contract" in result.output
