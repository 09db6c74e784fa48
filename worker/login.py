"""The worker's gateway login (Sign-In with Ethereum through the SDK), for uploading output bytes.

Fetching blobs needs no login; uploading does. The token is short-lived, so the provider logs in
again when its token is older than `refresh_s` (and after any failed upload, see GatewayBlobs).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


def gateway_token(gateway_url: str, market: Any, refresh_s: float = 600.0) -> Callable[[], str]:
    """A callable returning a valid bearer token for `market.account` on the gateway at `gateway_url`."""
    lock = threading.Lock()
    cached: dict[str, Any] = {"token": None, "at": 0.0}

    def token() -> str:
        with lock:
            if cached["token"] is None or time.monotonic() - cached["at"] > refresh_s:
                from sdk import GatewayClient

                gateway = GatewayClient(gateway_url)
                try:
                    body = gateway.login(market.account, chain_id=int(market.w3.eth.chain_id))
                finally:
                    gateway.close()
                cached["token"], cached["at"] = body["token"], time.monotonic()
            return cached["token"]

    def invalidate() -> None:
        with lock:
            cached["token"] = None

    token.invalidate = invalidate  # type: ignore[attr-defined]
    return token
