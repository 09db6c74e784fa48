"""Canonical bytes of integer tensors, and the keccak256 used for every commitment.

Format (all integers little-endian), specified in docs/fixed-point.md:

    magic   b"VFT1"
    count   u32                       number of tensors
    then per tensor, in the order given:
      name    u16 length + UTF-8 bytes
      dtype   u8   1=int8 2=int16 3=int32 4=int64 5=uint8
      ndim    u8
      dims    ndim x u64
      values  prod(dims) x itemsize, C order

Equal (name, dtype, shape, values) sequences give equal bytes and nothing else does.
"""

import struct

import numpy as np
from sha3 import keccak_256

from verifier.errors import FeedError

MAGIC = b"VFT1"
DTYPE_CODES = {np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("int64"): 4, np.dtype("uint8"): 5}
CODE_DTYPES = {code: dtype.newbyteorder("<") for dtype, code in DTYPE_CODES.items()}
MAX_NDIM = 16


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (the original Keccak padding, not FIPS SHA3-256), by safe-pysha3: a C extension with
    the speed of pycryptodome's on large inputs and a fraction of its per-call cost (0.6 us against 3.7 on a
    batch-1 model's outputs; every run hashes them)."""
    return keccak_256(data).digest()


def keccak_hex(data: bytes) -> str:
    """keccak256 of `data` as "0x" + 64 lowercase hex digits."""
    return "0x" + keccak256(data).hex()


def encode_tensors(tensors: dict[str, np.ndarray]) -> bytes:
    """Canonical bytes of a name -> integer tensor mapping, in its iteration order."""
    parts = [MAGIC, struct.pack("<I", len(tensors))]
    for name, array in tensors.items():
        array = np.asarray(array)
        if array.dtype not in DTYPE_CODES:
            raise FeedError(f"tensor {name!r}: dtype {array.dtype} is not a canonical integer dtype")
        if array.ndim > MAX_NDIM:
            raise FeedError(f"tensor {name!r}: {array.ndim} dimensions, at most {MAX_NDIM}")
        encoded_name = name.encode("utf-8")
        parts.append(struct.pack("<H", len(encoded_name)) + encoded_name)
        parts.append(struct.pack("<BB", DTYPE_CODES[array.dtype], array.ndim))
        parts.append(struct.pack(f"<{array.ndim}Q", *array.shape))
        parts.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def decode_tensors(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of encode_tensors; raises FeedError on anything that is not exactly that format."""
    view = memoryview(data)
    offset = 0

    def take(size: int) -> memoryview:
        nonlocal offset
        if offset + size > len(view):
            raise FeedError("tensor bytes are truncated")
        chunk = view[offset : offset + size]
        offset += size
        return chunk

    if bytes(take(4)) != MAGIC:
        raise FeedError("not canonical tensor bytes (bad magic)")
    (count,) = struct.unpack("<I", take(4))
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_len,) = struct.unpack("<H", take(2))
        try:
            name = bytes(take(name_len)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedError("tensor name is not UTF-8") from exc
        code, ndim = struct.unpack("<BB", take(2))
        if code not in CODE_DTYPES:
            raise FeedError(f"tensor {name!r}: unknown dtype code {code}")
        if ndim > MAX_NDIM:
            raise FeedError(f"tensor {name!r}: {ndim} dimensions, at most {MAX_NDIM}")
        shape = struct.unpack(f"<{ndim}Q", take(8 * ndim))
        dtype = CODE_DTYPES[code]
        count_values = int(np.prod(shape, dtype=object)) if shape else 1
        values = np.frombuffer(take(count_values * dtype.itemsize), dtype=dtype).reshape(shape)
        if name in tensors:
            raise FeedError(f"tensor {name!r} appears twice")
        tensors[name] = values.astype(dtype.newbyteorder("="))
    if offset != len(view):
        raise FeedError(f"{len(view) - offset} trailing bytes after the last tensor")
    return tensors
