"""EIP-1271: a contract wallet logs in with a signature its contract vouches for, checked through the chain."""

import json
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from contracts.chain import EmbeddedChain
from gateway.server import serve_in_thread
from gateway.settings import GatewaySettings
from gateway_helpers import assert_error, fresh_nonce, sign, siwe_message

WALLET = json.loads((Path(__file__).parent / "wallet" / "OwnerWallet.json").read_text())


@pytest.fixture(scope="module")
def chain():
    return EmbeddedChain(num_accounts=2)


@pytest.fixture(scope="module")
def owner():
    return Account.create()


@pytest.fixture(scope="module")
def wallet_address(chain, owner):
    factory = chain.w3.eth.contract(abi=WALLET["abi"], bytecode=WALLET["bytecode"])
    deployer = chain.accounts[0]
    tx = factory.constructor(owner.address).build_transaction({
        "from": deployer.address, "nonce": chain.w3.eth.get_transaction_count(deployer.address),
        "gas": 1_000_000, "gasPrice": chain.w3.eth.gas_price * 2, "chainId": chain.w3.eth.chain_id})
    tx_hash = chain.w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
    return chain.w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]


@pytest.fixture(scope="module")
def gateway(chain, tmp_path_factory):
    with serve_in_thread(GatewaySettings(port=0, data_dir=tmp_path_factory.mktemp("gw")), w3=chain.w3) as server:
        yield server


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def wallet_login(http, gateway, chain, wallet_address, signer):
    message = siwe_message(gateway, wallet_address, fresh_nonce(http), chain_id=chain.w3.eth.chain_id)
    return http.post("/auth/login", json={"message": message, "signature": sign(signer, message)})


def test_contract_wallet_logs_in_with_a_signature_it_vouches_for(http, gateway, chain, wallet_address, owner):
    response = wallet_login(http, gateway, chain, wallet_address, owner)
    assert response.status_code == 200, response.text
    assert response.json()["address"] == wallet_address


def test_contract_wallet_login_signed_by_someone_else_is_rejected(http, gateway, chain, wallet_address):
    assert_error(wallet_login(http, gateway, chain, wallet_address, Account.create()), 401, "invalid_signature")


def test_login_for_an_address_without_code_needs_its_own_signature(http, gateway, chain, owner):
    stranger = Account.create().address
    assert_error(wallet_login(http, gateway, chain, stranger, owner), 401, "invalid_signature")
