"""Bearer tokens and blob names as properties: any change to a token breaks it, only 0x+64 hex names a blob."""

import string
import time

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import TokenSigner
from gateway.errors import ApiError
from gateway.store import parse_hash
from sdk.gateway_client import siwe_message

SIGNER = TokenSigner(b"k" * 32, ttl_seconds=600)
ADDRESS = Account.from_key(b"\x01" * 32).address
TOKEN, CLAIMS = SIGNER.issue(ADDRESS)


def test_token_carries_the_address_and_expiry():
    claims = SIGNER.verify(TOKEN)
    assert claims.address == ADDRESS and claims.expires_at == CLAIMS.expires_at
    assert 0 < claims.expires_at - time.time() <= 600


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(TOKEN) - 1), replacement=st.sampled_from(
    string.ascii_letters + string.digits + "-_."))
def test_any_changed_character_invalidates_the_token(position, replacement):
    forged = TOKEN[:position] + replacement + TOKEN[position + 1:]
    if forged == TOKEN:
        return
    with pytest.raises(ApiError) as caught:
        SIGNER.verify(forged)
    assert caught.value.status == 401


@given(st.text(max_size=80))
def test_only_0x_and_64_hex_digits_name_a_blob(text):
    valid = len(text) == 66 and text.startswith("0x") and all(c in string.hexdigits for c in text[2:])
    try:
        assert parse_hash(text) == text.lower() and valid
    except ApiError as exc:
        assert not valid and exc.status == 400


def test_the_sdk_builds_siwe_messages_in_the_canonical_form_the_gateway_requires():
    from siwe import SiweMessage

    message = siwe_message(domain="gw.example:8000", address=ADDRESS, uri="http://gw.example:8000",
                           chain_id=31337, nonce="abcdefgh12345678")
    parsed = SiweMessage.from_message(message)
    assert parsed.prepare_message() == message
    assert (parsed.domain, parsed.address, parsed.chain_id) == ("gw.example:8000", ADDRESS, 31337)
