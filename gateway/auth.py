"""Sign-In with Ethereum (EIP-4361) and the short-lived bearer tokens the gateway issues after it.

A login is accepted only when every check passes; only then is its nonce consumed (a single
conditional UPDATE, so of two concurrent logins with one nonce exactly one wins, and a garbage
attempt never burns someone else's nonce). Tokens are `v1.<payload>.<mac>`: a base64url JSON
payload {sub: address, iat, exp, jti} and its HMAC-SHA256 under the gateway's secret.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils import to_checksum_address

from gateway.db import Nonces
from gateway.errors import bad_request, unauthorized

MAX_MESSAGE_CHARS = 4096
MAX_SIGNATURE_HEX = 4096  # EIP-1271 wallets (multisigs) sign with more than 65 bytes
FIELD_CAPS = {"domain": 255, "uri": 512, "statement": 512, "nonce": 64, "request_id": 128, "scheme": 16}
MAX_RESOURCES, MAX_RESOURCE_CHARS = 16, 512
EIP1271_MAGIC = bytes.fromhex("1626ba7e")
EIP1271_ABI = [{
    "name": "isValidSignature", "type": "function", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "magicValue", "type": "bytes4"}],
}]
NONCE_ALPHABET = string.ascii_letters + string.digits
_SIGNATURE = re.compile(r"^0x(?:[0-9a-fA-F]{2})+$")


def new_nonce() -> str:
    """24 alphanumeric characters (EIP-4361 asks for at least 8), ~143 bits."""
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(24))


# ----------------------------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class TokenClaims:
    address: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int):
        self.secret, self.ttl_seconds = secret, ttl_seconds

    def issue(self, address: str, now: float | None = None) -> tuple[str, TokenClaims]:
        issued_at = int(time.time() if now is None else now)
        claims = TokenClaims(address, issued_at, issued_at + self.ttl_seconds)
        payload = _b64(json.dumps(
            {"sub": address, "iat": claims.issued_at, "exp": claims.expires_at, "jti": secrets.token_hex(8)},
            separators=(",", ":"),
        ).encode())
        return f"v1.{payload}.{self._mac(payload)}", claims

    def verify(self, token: str) -> TokenClaims:
        """Claims of a token this gateway signed and that has not expired; 401 otherwise."""
        parts = token.split(".")
        if len(token) > 1024 or len(parts) != 3 or parts[0] != "v1":
            raise unauthorized("invalid_token", "the bearer token is not a vinfer gateway token")
        _, payload, mac = parts
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise unauthorized("invalid_token", "the bearer token's signature does not verify")
        try:
            body = json.loads(_unb64(payload))
            claims = TokenClaims(to_checksum_address(body["sub"]), int(body["iat"]), int(body["exp"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise unauthorized("invalid_token", "the bearer token's payload is malformed") from exc
        if claims.expires_at <= time.time():
            raise unauthorized("token_expired", "the bearer token has expired; log in again")
        return claims

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())


def load_or_create_secret(path: Path) -> bytes:
    """The token key persisted in the data dir (0600), so tokens survive a restart."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secret.hex())
    tmp.chmod(0o600)
    tmp.replace(path)
    return secret


# ----------------------------------------------------------------------------------------------- SIWE

@dataclass(frozen=True)
class LoginPolicy:
    domain: str
    origin: str
    chain_id: int
    max_message_age_seconds: int
    clock_skew_seconds: int


def verify_login(message: str, signature: str, *, policy: LoginPolicy, nonces: Nonces, w3=None) -> str:
    """The checksummed address a fully valid SIWE login proves; raises ApiError (400/401) otherwise.
    The nonce is consumed last, only once everything else has passed."""
    parsed = _parse(message, signature)
    now = datetime.now(timezone.utc)
    _check_claims(parsed, policy, now)
    if not nonces.is_usable(parsed.nonce):
        raise unauthorized("invalid_nonce", "the nonce was not issued by this gateway, is used, or has expired")
    _check_signature(parsed, message, signature, now, w3)
    if not nonces.consume(parsed.nonce):
        raise unauthorized("invalid_nonce", "the nonce has just been used or has expired")
    return to_checksum_address(parsed.address)


def _parse(message: str, signature: str):
    import siwe  # heavy: builds an ABNF grammar on import

    if len(message) > MAX_MESSAGE_CHARS:
        raise bad_request("message_too_long", f"the SIWE message is over {MAX_MESSAGE_CHARS} characters")
    if len(signature) > MAX_SIGNATURE_HEX or not _SIGNATURE.match(signature):
        raise bad_request("malformed_signature", "the signature must be 0x-prefixed hex bytes")
    try:
        parsed = siwe.SiweMessage.from_message(message)
    except Exception as exc:  # the siwe parser raises ValueError, pydantic errors and its own types
        raise bad_request("malformed_message", f"not an EIP-4361 message: {_first_line(exc)}") from exc
    if parsed.prepare_message() != message:
        raise bad_request("malformed_message", "the message is not in canonical EIP-4361 form")
    for field, cap in FIELD_CAPS.items():
        value = getattr(parsed, field)
        if value is not None and len(str(value)) > cap:
            raise bad_request("field_too_long", f"the {field} field is over {cap} characters")
    resources = parsed.resources or []
    if len(resources) > MAX_RESOURCES or any(len(r) > MAX_RESOURCE_CHARS for r in resources):
        raise bad_request("field_too_long", f"at most {MAX_RESOURCES} resources of {MAX_RESOURCE_CHARS} characters")
    return parsed


def _check_claims(parsed, policy: LoginPolicy, now: datetime) -> None:
    if parsed.domain != policy.domain:
        raise unauthorized("wrong_domain", f"the message is for {parsed.domain!r}, this gateway is {policy.domain!r}")
    scheme = policy.origin.split("://", 1)[0]
    if parsed.scheme is not None and parsed.scheme != scheme:
        raise unauthorized("wrong_scheme", f"the message's scheme {parsed.scheme!r} is not {scheme!r}")
    if not (parsed.uri == policy.origin or parsed.uri.startswith(policy.origin + "/")):
        raise unauthorized("wrong_uri", f"the message's URI {parsed.uri!r} is not under {policy.origin!r}")
    if str(parsed.version) != "1":
        raise unauthorized("wrong_version", f"SIWE version {parsed.version} is not supported (only 1)")
    if parsed.chain_id != policy.chain_id:
        raise unauthorized("wrong_chain", f"the message is for chain {parsed.chain_id}, this gateway is on {policy.chain_id}")
    issued_at = parsed.issued_at._datetime
    age = (now - issued_at).total_seconds()
    if age < -policy.clock_skew_seconds:
        raise unauthorized("issued_in_future", "the message's Issued At is in the future")
    if age > policy.max_message_age_seconds:
        raise unauthorized("message_too_old", f"the message was issued over {policy.max_message_age_seconds} s ago")
    if parsed.expiration_time is not None and now >= parsed.expiration_time._datetime:
        raise unauthorized("message_expired", "the message's Expiration Time has passed")
    if parsed.not_before is not None and now < parsed.not_before._datetime:
        raise unauthorized("not_yet_valid", "the message's Not Before time has not come")


def _check_signature(parsed, message: str, signature: str, now: datetime, w3) -> None:
    if _recover(message, signature) == parsed.address:
        try:  # the siwe package's own checks, as a second opinion on ours
            parsed.verify(signature, domain=parsed.domain, nonce=parsed.nonce, timestamp=now)
        except Exception as exc:
            raise unauthorized("invalid_login", f"the message does not verify: {type(exc).__name__}") from exc
        return
    if w3 is not None and _contract_wallet_accepts(w3, parsed.address, message, signature):
        return
    raise unauthorized("invalid_signature", "the signature was not made by the address in the message")


def _recover(message: str, signature: str) -> str | None:
    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # eth-keys raises several types for bytes that are no signature at all
        return None


def _contract_wallet_accepts(w3, address: str, message: str, signature: str) -> bool:
    """EIP-1271: a contract at `address` vouches for the signature over the EIP-191 hash of the message."""
    try:
        if not w3.eth.get_code(address):
            return False
        wallet = w3.eth.contract(address=address, abi=EIP1271_ABI)
        magic = wallet.functions.isValidSignature(defunct_hash_message(text=message), bytes.fromhex(signature[2:])).call()
    except Exception:  # a revert, a wallet without the method, an RPC hiccup: not a valid signature
        return False
    return bytes(magic) == EIP1271_MAGIC


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
