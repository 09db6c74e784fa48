"""End-to-end fixtures: a tiny real ONNX model compiled once, and a fresh network per scenario.

Scenarios that need an escalation round deploy with growth 1 (round 2 asks for 3*1+1 = 4 workers and
needs 3 agreeing) so the wide round fits in a handful of worker threads; the decision rule is the same.
The first round's workers are registered before the job and the wide round's only after it is
assigned, so a scenario knows exactly who is in which round without weakening the random draw.
"""

from __future__ import annotations

import numpy as np
import pytest

from e2e_helpers import ESCALATION_PARAMS, tiny_model


@pytest.fixture(scope="session")
def program():
    from verifier import compile_model

    rng = np.random.default_rng(1)
    return compile_model(tiny_model(), calibration={"x": rng.standard_normal((16, 8)).astype(np.float32)})


@pytest.fixture(scope="session")
def feeds():
    return {"x": np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)}


@pytest.fixture
def network(tmp_path):
    from worker.network import LocalNetwork

    with LocalNetwork(data_dir=tmp_path, market_params=ESCALATION_PARAMS, poll_interval_s=0.1, block_time_s=0.3) as net:
        yield net


@pytest.fixture
def requester(network):
    from sdk import Client

    return Client.login(network.gateway_url, network.w3, network.requester.key, network.market_address)


