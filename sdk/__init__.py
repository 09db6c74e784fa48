"""The requester SDK: log in with a wallet, upload models and inputs, submit jobs, verify results.

    from sdk import Client
    client = Client.login(gateway_url, rpc_url, private_key, market_address)
"""

from sdk.client import Client, UploadedModel
from sdk.errors import *  # noqa: F403 - the exception tree is part of the public API
from sdk.errors import __all__ as _error_names
from sdk.gateway_client import GatewayClient
from sdk.job import Job
from sdk.verify import Check, Verification

__all__ = ["Client", "UploadedModel", "Job", "Verification", "Check", "GatewayClient", *_error_names]
