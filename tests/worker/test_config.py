"""Keys, amounts and settings of a worker."""

import pytest
from eth_account import Account

from worker.config import KEY_ENV, PASSWORD_ENV, ConfigError, load_account, parse_amount, write_keystore


@pytest.mark.parametrize(
    "text, wei",
    [("1ether", 10**18), ("0.5 ether", 5 * 10**17), ("250gwei", 250 * 10**9), ("12345", 12345), ("2ETH", 2 * 10**18)],
)
def test_amounts_are_read_in_wei(text, wei):
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["", "one ether", "1 bitcoin", "0.5wei", "-1ether"])
def test_unreadable_amount_is_a_clear_error(text):
    with pytest.raises(ConfigError):
        parse_amount(text)


def test_key_comes_from_the_environment(monkeypatch):
    account = Account.create()
    monkeypatch.setenv(KEY_ENV, account.key.hex())
    assert load_account().address == account.address


def test_missing_key_names_both_ways_to_provide_it(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match="--keystore.*VINFER_WORKER_KEY"):
        load_account()


def test_keystore_round_trips_and_is_private(tmp_path, monkeypatch):
    account = Account.create()
    path = write_keystore(account, tmp_path / "key.json", "pw")
    assert path.stat().st_mode & 0o077 == 0
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    assert load_account(path).address == account.address


def test_keystore_with_wrong_password_is_a_clear_error(tmp_path, monkeypatch):
    path = write_keystore(Account.create(), tmp_path / "key.json", "pw")
    monkeypatch.setenv(PASSWORD_ENV, "not-pw")
    with pytest.raises(ConfigError, match="cannot decrypt"):
        load_account(path)
