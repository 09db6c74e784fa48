"""Content-addressed blob store on a directory: a blob lives at <dir>/<2 hex>/<64 hex> named by the
keccak256 of its bytes. Uploads stream into a temp file while being hashed and counted, and become
visible only by an atomic rename once complete and accepted; a rejected upload leaves nothing behind.
Reads re-hash the file before serving it, so bytes that do not match their name are never served."""

import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from Crypto.Hash import keccak

from gateway.errors import bad_request, not_found, too_large, unprocessable

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
READ_CHUNK = 1 << 20


def parse_hash(text: str) -> str:
    """A blob name as "0x" + 64 lowercase hex; 400 for anything else, before it touches the file system."""
    if not _HASH.match(text):
        raise bad_request("invalid_hash", "a blob hash is 0x followed by 64 hex digits")
    return text.lower()


@dataclass(frozen=True)
class StoredBlob:
    hash: str
    size: int
    created: bool  # False when identical bytes were already stored


class BlobStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = Path(root), max_bytes
        self.tmp_dir = self.root / ".incoming"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, blob_hash: str) -> Path:
        digest = parse_hash(blob_hash)[2:]
        return self.root / digest[:2] / digest

    def size_of(self, blob_hash: str) -> int | None:
        path = self.path_for(blob_hash)
        return path.stat().st_size if path.is_file() else None

    async def put(
        self,
        chunks: AsyncIterator[bytes],
        *,
        expected_hash: str | None = None,
        accept: Callable[[Path, str, int], None] = lambda path, blob_hash, size: None,
    ) -> StoredBlob:
        """Store a streamed upload. `accept(temp_path, hash, size)` runs on the complete bytes before they
        become visible and may raise to reject them (validation, quota); the temp file is removed then."""
        expected = parse_hash(expected_hash) if expected_hash is not None else None
        hasher, size = keccak.new(digest_bits=256), 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir)
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise too_large("blob_too_large", f"a blob may be at most {self.max_bytes} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            blob_hash = "0x" + hasher.hexdigest()
            if expected is not None and blob_hash != expected:
                raise unprocessable("hash_mismatch", f"the bytes hash to {blob_hash}, not the expected {expected}")
            final = self.path_for(blob_hash)
            if final.is_file():
                return StoredBlob(blob_hash, size, created=False)
            accept(tmp_path, blob_hash, size)
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp_path, final)
            return StoredBlob(blob_hash, size, created=True)
        finally:
            tmp_path.unlink(missing_ok=True)

    def open_verified(self, blob_hash: str) -> Path:
        """Path of a stored blob whose bytes hash to its name. A file that fails the check (disk
        corruption, tampering) is removed and reported missing: it can never be served."""
        path = self.path_for(blob_hash)
        if not path.is_file():
            raise not_found("blob_not_found", f"no blob {parse_hash(blob_hash)}")
        hasher = keccak.new(digest_bits=256)
        with path.open("rb") as src:
            while chunk := src.read(READ_CHUNK):
                hasher.update(chunk)
        if "0x" + hasher.hexdigest() != parse_hash(blob_hash):
            path.unlink(missing_ok=True)
            raise not_found("blob_not_found", f"blob {parse_hash(blob_hash)} failed its hash check and was removed")
        return path
