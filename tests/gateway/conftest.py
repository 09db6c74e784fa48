"""A real gateway (uvicorn on a free loopback port, SQLite, a blob directory) and real wallet signatures."""

import httpx
import pytest
from eth_account import Account

from gateway.server import serve_in_thread
from gateway.settings import GatewaySettings
from gateway_helpers import CHAIN_ID, MAX_BLOB, QUOTA, SECRET, login


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    settings = GatewaySettings(host="127.0.0.1", port=0, data_dir=tmp_path_factory.mktemp("gateway"),
                               chain_id=CHAIN_ID, token_secret=SECRET, max_blob_bytes=MAX_BLOB,
                               quota_bytes_per_address=QUOTA)
    server = serve_in_thread(settings)
    yield server
    server.stop()


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.fixture
def wallet():
    return Account.create()


@pytest.fixture
def token(http, gateway, wallet) -> str:
    response = login(http, gateway, wallet)
    assert response.status_code == 200, response.text
    return response.json()["token"]


@pytest.fixture
def auth(token) -> dict:
    return {"Authorization": f"Bearer {token}"}
