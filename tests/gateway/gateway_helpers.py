"""Helpers the gateway tests share: SIWE messages built with the siwe package, signed with eth-account."""

from datetime import datetime, timedelta, timezone

import httpx
from eth_account.messages import encode_defunct

CHAIN_ID = 31337
MAX_BLOB = 256 * 1024
QUOTA = 600 * 1024
SECRET = "test-token-secret"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe_message(gateway, address: str, nonce: str, **overrides) -> str:
    """An EIP-4361 message valid for `gateway`, with any field overridden (None drops an optional one)."""
    from siwe import SiweMessage

    now = datetime.now(timezone.utc)
    fields = dict(domain=gateway.settings.domain, address=address, uri=gateway.url + "/login", version="1",
                  chain_id=CHAIN_ID, nonce=nonce, issued_at=iso(now), expiration_time=iso(now + timedelta(minutes=5)),
                  statement="Sign in to the vinfer gateway.")
    fields.update(overrides)
    return SiweMessage(**{k: v for k, v in fields.items() if v is not None}).prepare_message()


def sign(account, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


def fresh_nonce(http) -> str:
    response = http.get("/auth/nonce")
    assert response.status_code == 200
    return response.json()["nonce"]


def login(http, gateway, account, **overrides) -> httpx.Response:
    message = siwe_message(gateway, account.address, fresh_nonce(http), **overrides)
    return http.post("/auth/login", json={"message": message, "signature": sign(account, message)})


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> None:
    """The gateway's error shape: the status, and a JSON body of exactly {error, detail}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    if error is not None:
        assert body["error"] == error
