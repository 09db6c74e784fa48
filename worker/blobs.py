"""Fetching and publishing blobs through the gateway, without trusting it.

Every fetched blob is re-hashed (keccak256) and compared with the hash the chain named; a gateway
that is down or serves other bytes is retried with exponential backoff, and if it never serves the
right bytes the caller gets `BlobUnavailable` -- a worker never computes on unverified bytes.
Programs are cached by hash (they are immutable, and a model is usually run on many inputs).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

import httpx

from verifier.encoding import keccak_hex

DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024


class BlobUnavailable(Exception):
    """The gateway did not serve bytes matching the hash after every retry."""


class GatewayBlobs:
    """GET/PUT /blobs on one gateway. `token` is a callable returning a bearer token (SIWE login), used for PUT."""

    def __init__(
        self,
        url: str,
        token: Callable[[], str] | None = None,
        retries: int = 4,
        backoff_s: float = 0.2,
        timeout_s: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        cache_entries: int = 16,
    ):
        self.url = url.rstrip("/")
        self._token = token
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self._http = httpx.Client(timeout=timeout_s)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def fetch(self, blob_hash: str, cache: bool = False) -> bytes:
        """The bytes whose keccak256 is `blob_hash`, or BlobUnavailable after the retries."""
        blob_hash = blob_hash.lower()
        with self._lock:
            if blob_hash in self._cache:
                self._cache.move_to_end(blob_hash)
                return self._cache[blob_hash]
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                data = self._get(blob_hash)
            except (httpx.HTTPError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            actual = keccak_hex(data)
            if actual == blob_hash:
                if cache:
                    self._remember(blob_hash, data)
                return data
            problem = f"gateway served bytes hashing to {actual}"
        raise BlobUnavailable(f"blob {blob_hash} not available from {self.url} after {self.retries + 1} attempts ({problem})")

    def _get(self, blob_hash: str) -> bytes:
        with self._http.stream("GET", f"{self.url}/blobs/{blob_hash}") as response:
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ValueError(f"blob larger than {self.max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    def _remember(self, blob_hash: str, data: bytes) -> None:
        with self._lock:
            self._cache[blob_hash] = data
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)

    def exists(self, blob_hash: str) -> bool:
        try:
            return self._http.head(f"{self.url}/blobs/{blob_hash.lower()}").status_code == 200
        except httpx.HTTPError:
            return False

    def upload(self, data: bytes) -> str:
        """PUT the bytes (retrying like fetch); returns their hash as the gateway stored it."""
        if self._token is None:
            raise BlobUnavailable("no gateway login configured for uploads")
        expected = keccak_hex(data)
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                headers = {"Authorization": f"Bearer {self._token()}", "Content-Type": "application/octet-stream"}
                response = self._http.put(f"{self.url}/blobs", content=data, headers=headers)
                response.raise_for_status()
            except Exception as exc:  # noqa: BLE001 - any login or transport failure is retried
                problem = f"{type(exc).__name__}: {exc}"
                invalidate = getattr(self._token, "invalidate", None)
                if invalidate is not None:  # an expired or revoked token: log in again next attempt
                    invalidate()
                continue
            stored = str(response.json().get("hash", "")).lower()
            if stored != expected:
                raise BlobUnavailable(f"gateway stored the output under {stored}, expected {expected}")
            return stored
        raise BlobUnavailable(f"upload to {self.url} failed after {self.retries + 1} attempts ({problem})")
