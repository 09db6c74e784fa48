"""The requester's world on the embedded chain: the market deployed, three staked workers simulated by
the test through the binding, a real gateway on a loopback port, and a small model built with onnx."""

import numpy as np
import pytest

from contracts import deploy_market
from contracts.chain import EmbeddedChain
from gateway.server import serve_in_thread
from gateway.settings import GatewaySettings
from sdk import Client
from sdk_helpers import STAKE, SimulatedWorkers, small_mlp


@pytest.fixture(scope="module")
def chain():
    return EmbeddedChain()


@pytest.fixture(scope="module")
def market_address(chain):
    return deploy_market(chain.w3, chain.accounts[0]).address


@pytest.fixture(scope="module")
def gateway(chain, market_address, tmp_path_factory):
    settings = GatewaySettings(port=0, data_dir=tmp_path_factory.mktemp("gateway"), market_address=market_address)
    server = serve_in_thread(settings, w3=chain.w3)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workers(chain, market_address, gateway):
    return SimulatedWorkers(chain, market_address, gateway.url, [chain.new_account(10 * STAKE) for _ in range(3)])


@pytest.fixture(scope="module")
def requester_account(chain):
    return chain.new_account(10 * STAKE)


@pytest.fixture(scope="module")
def client(chain, market_address, gateway, requester_account):
    return Client.login(gateway.url, chain.w3, requester_account, market_address)


@pytest.fixture(scope="module")
def onnx_model():
    return small_mlp()


@pytest.fixture(scope="module")
def feeds():
    return {"x": np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32)}


@pytest.fixture(scope="module")
def model(client, onnx_model, feeds):
    calibration = {"x": np.random.default_rng(2).normal(size=(64, 6)).astype(np.float32)}
    return client.upload_model(onnx_model, calibration=calibration)
