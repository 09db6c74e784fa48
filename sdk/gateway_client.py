"""HTTP client of the vinfer gateway: SIWE login, blob upload and fetch, the job view. Every blob
fetched is re-hashed here; the gateway is trusted for availability, never for content."""

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
from Crypto.Hash import keccak

from sdk.errors import (AuthenticationError, BlobNotFoundError, ConfigError, ContentMismatchError, GatewayError,
                        UploadRejectedError)
from verifier.encoding import keccak_hex

MAX_DOWNLOAD_BYTES = 1 << 30
STATEMENT = "Sign in to the vinfer gateway to upload models and inputs."


def siwe_message(*, domain: str, address: str, uri: str, chain_id: int, nonce: str,
                 issued_at: datetime | None = None, lifetime: timedelta = timedelta(minutes=5)) -> str:
    """An EIP-4361 message in canonical form (what the gateway re-serialises and compares)."""
    issued_at = issued_at or datetime.now(timezone.utc)
    return (f"{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{STATEMENT}\n\n"
            f"URI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {_iso(issued_at)}\n"
            f"Expiration Time: {_iso(issued_at + lifetime)}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GatewayClient:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"gateway URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # -- auth
    def login(self, account, chain_id: int | None = None) -> dict:
        """Sign in with `account` (an eth_account LocalAccount); keeps and returns {token, address, expires_at}."""
        from eth_account.messages import encode_defunct

        issued = self._json("GET", "/auth/nonce")
        message = siwe_message(domain=urlsplit(self.url).netloc, address=account.address, uri=self.url,
                               chain_id=issued["chain_id"] if chain_id is None else chain_id, nonce=issued["nonce"])
        signature = "0x" + bytes(account.sign_message(encode_defunct(text=message)).signature).hex()
        body = self._json("POST", "/auth/login", json={"message": message, "signature": signature})
        self.token = body["token"]
        return body

    def me(self) -> dict:
        return self._json("GET", "/auth/me", auth=True)

    # -- blobs
    def put_blob(self, data: bytes) -> str:
        """Upload bytes; returns their keccak256 after checking the gateway stored exactly these bytes."""
        expected = keccak_hex(data)
        body = self._json("PUT", "/blobs", content=data, auth=True, headers={"X-Expected-Hash": expected})
        if body["hash"] != expected:
            raise ContentMismatchError("uploaded", expected, body["hash"])
        return expected

    def has_blob(self, blob_hash: str) -> bool:
        return self._http.head(f"/blobs/{blob_hash}").status_code == 200

    def get_blob(self, blob_hash: str, *, what: str = "blob", max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """The bytes stored under `blob_hash`, re-hashed here; ContentMismatchError if they do not match."""
        hasher, parts, size = keccak.new(digest_bits=256), [], 0
        with self._http.stream("GET", f"/blobs/{blob_hash}") as response:
            if response.status_code != 200:
                response.read()
                raise _error(response)
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise GatewayError(413, "download_too_large", f"the {what} blob is over {max_bytes} bytes")
                hasher.update(chunk)
                parts.append(chunk)
        actual = "0x" + hasher.hexdigest()
        if actual != blob_hash.lower():
            raise ContentMismatchError(what, blob_hash.lower(), actual)
        return b"".join(parts)

    # -- jobs
    def job_view(self, job_id: int) -> dict:
        return self._json("GET", f"/jobs/{int(job_id)}")

    def _json(self, method: str, path: str, *, auth: bool = False, headers: dict | None = None, **kwargs) -> dict:
        headers = dict(headers or {})
        if auth:
            if not self.token:
                raise AuthenticationError(401, "missing_token", "no token: log in first (vinfer login)")
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(0, "unreachable", f"cannot reach the gateway at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response.json()


def _error(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
        error, detail = str(body.get("error", "error")), str(body.get("detail", ""))
    except ValueError:
        error, detail = "error", response.text[:200]
    status = response.status_code
    kind = {401: AuthenticationError, 403: AuthenticationError, 404: BlobNotFoundError, 413: UploadRejectedError,
            422: UploadRejectedError}.get(status, GatewayError)
    if status == 404 and error != "blob_not_found":
        kind = GatewayError
    return kind(status, error, detail or response.reason_phrase)
