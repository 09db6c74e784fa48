"""The commitments' hash (verifier/encoding.py): Ethereum's keccak256, the one the contracts and eth_utils compute."""

import numpy as np
from Crypto.Hash import keccak
from eth_utils import keccak as eth_keccak

from verifier.encoding import encode_tensors, keccak256, keccak_hex


def test_keccak256_is_ethereums_on_every_length_across_the_rate_boundaries():
    """Lengths 0..300 (the sponge absorbs 136 bytes a block: padding falls in the last block, or fills a new one),
    and a long input: the same digest as pycryptodome's Keccak and eth_utils (the chain's)."""
    assert keccak_hex(b"") == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    data = np.random.default_rng(0).bytes(20_000)
    for length in list(range(301)) + [20_000]:
        chunk = data[:length]
        assert keccak256(chunk) == keccak.new(digest_bits=256, data=chunk).digest() == eth_keccak(chunk)


def test_a_commitment_hashes_the_canonical_bytes_of_the_outputs():
    outputs = {"logits": np.arange(-5, 5, dtype=np.int64).reshape(1, 10)}
    data = encode_tensors(outputs)
    assert keccak_hex(data) == "0x" + eth_keccak(data).hex()
