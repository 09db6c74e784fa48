"""Sign-In with Ethereum against a real server: every check of the issue, one behaviour a test."""

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from eth_account import Account

from gateway.auth import TokenSigner
from gateway_helpers import SECRET, assert_error, fresh_nonce, iso, login, sign, siwe_message


def post_login(http, message, signature):
    return http.post("/auth/login", json={"message": message, "signature": signature})


def test_nonce_names_the_domain_uri_and_chain_a_message_must_carry(http, gateway):
    body = http.get("/auth/nonce").json()
    assert len(body["nonce"]) >= 8 and body["nonce"].isalnum()
    assert body["domain"] == gateway.settings.domain and body["uri"] == gateway.url and body["chain_id"] == 31337
    assert body["nonce"] != http.get("/auth/nonce").json()["nonce"]


def test_login_with_a_valid_signature_returns_a_token_for_the_signer(http, gateway, wallet):
    response = login(http, gateway, wallet)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["address"] == wallet.address
    assert time.time() < body["expires_at"] <= time.time() + gateway.settings.token_ttl_seconds + 1


def test_me_echoes_the_tokens_address_and_expiry(http, gateway, wallet):
    body = login(http, gateway, wallet).json()
    me = http.get("/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["address"] == wallet.address and me.json()["expires_at"] == body["expires_at"]


def test_tampered_signature_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    signature = bytearray.fromhex(sign(wallet, message)[2:])
    signature[10] ^= 0x01
    assert_error(post_login(http, message, "0x" + signature.hex()), 401)


def test_signature_by_another_key_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    assert_error(post_login(http, message, sign(Account.create(), message)), 401, "invalid_signature")


def test_message_changed_after_signing_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    signature = sign(wallet, message)
    altered = message.replace("Sign in to the vinfer gateway.", "Sign in to the vinfer gateway!")
    assert_error(post_login(http, altered, signature), 401, "invalid_signature")


def test_wrong_domain_is_rejected(http, gateway, wallet):
    assert_error(login(http, gateway, wallet, domain="evil.example"), 401, "wrong_domain")


def test_uri_outside_the_gateway_is_rejected(http, gateway, wallet):
    assert_error(login(http, gateway, wallet, uri="https://evil.example/login"), 401, "wrong_uri")


def test_wrong_chain_id_is_rejected(http, gateway, wallet):
    assert_error(login(http, gateway, wallet, chain_id=1), 401, "wrong_chain")


def test_reused_nonce_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    assert post_login(http, message, sign(wallet, message)).status_code == 200
    assert_error(post_login(http, message, sign(wallet, message)), 401, "invalid_nonce")


def test_nonce_not_issued_by_the_gateway_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, "NotIssuedHere12345")
    assert_error(post_login(http, message, sign(wallet, message)), 401, "invalid_nonce")


def test_failed_login_does_not_burn_the_nonce(http, gateway, wallet):
    nonce = fresh_nonce(http)
    message = siwe_message(gateway, wallet.address, nonce)
    assert_error(post_login(http, message, sign(Account.create(), message)), 401)
    assert post_login(http, message, sign(wallet, message)).status_code == 200


def test_concurrent_logins_with_one_nonce_exactly_one_succeeds(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    signature = sign(wallet, message)
    statuses, barrier = [], threading.Barrier(8)

    def attempt():
        import httpx

        barrier.wait()
        statuses.append(httpx.post(gateway.url + "/auth/login", json={"message": message, "signature": signature},
                                   timeout=30).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * 7


def test_expired_message_is_rejected(http, gateway, wallet):
    past = datetime.now(timezone.utc) - timedelta(seconds=30)
    response = login(http, gateway, wallet, issued_at=iso(past - timedelta(minutes=1)), expiration_time=iso(past))
    assert_error(response, 401, "message_expired")


def test_message_not_yet_valid_is_rejected(http, gateway, wallet):
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    assert_error(login(http, gateway, wallet, not_before=iso(later)), 401, "not_yet_valid")


def test_message_issued_in_the_future_is_rejected(http, gateway, wallet):
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    response = login(http, gateway, wallet, issued_at=iso(later), expiration_time=iso(later + timedelta(minutes=5)))
    assert_error(response, 401, "issued_in_future")


def test_message_issued_too_long_ago_is_rejected(http, gateway, wallet):
    old = datetime.now(timezone.utc) - timedelta(hours=2)
    assert_error(login(http, gateway, wallet, issued_at=iso(old), expiration_time=None), 401, "message_too_old")


def test_over_long_statement_is_rejected(http, gateway, wallet):
    assert_error(login(http, gateway, wallet, statement="x" * 600), 400, "field_too_long")


def test_text_that_is_not_a_siwe_message_is_rejected(http, wallet):
    assert_error(post_login(http, "hello", sign(wallet, "hello")), 400, "malformed_message")


def test_signature_that_is_not_hex_is_rejected(http, gateway, wallet):
    message = siwe_message(gateway, wallet.address, fresh_nonce(http))
    assert_error(post_login(http, message, "not-a-signature"), 400, "malformed_signature")


def test_missing_token_is_rejected(http):
    assert_error(http.get("/auth/me"), 401, "missing_token")


def test_expired_token_is_rejected(http, wallet):
    token, _ = TokenSigner(SECRET.encode(), ttl_seconds=60).issue(wallet.address, now=time.time() - 120)
    assert_error(http.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 401, "token_expired")


def test_token_signed_with_another_key_is_rejected(http, wallet):
    token, _ = TokenSigner(b"someone else's key", ttl_seconds=60).issue(wallet.address)
    assert_error(http.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 401, "invalid_token")


@pytest.mark.parametrize("garbage", ["v1", "v1.a.b", "v1.e30.AAAA", "Bearer", "x" * 2000])
def test_garbage_token_is_rejected(http, garbage):
    assert http.get("/auth/me", headers={"Authorization": f"Bearer {garbage}"}).status_code == 401


def test_login_body_over_the_request_limit_is_413(http):
    response = http.post("/auth/login", json={"message": "x" * 100_000, "signature": "0x00"})
    assert_error(response, 413)


def test_nonces_stop_being_issued_when_too_many_logins_are_pending(tmp_path):
    from gateway.db import Nonces, open_database

    nonces = Nonces(open_database(f"sqlite:///{tmp_path / 'n.sqlite3'}"), ttl_seconds=60, max_pending=3)
    assert all(nonces.issue(f"nonce{i}abcdef") for i in range(3))
    assert nonces.issue("one-too-many") is None
    assert nonces.consume("nonce0abcdef")
    assert nonces.issue("room-again-now") is not None


def test_streamed_login_body_over_the_request_limit_is_413(http):
    def chunks():
        yield b'{"message": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'", "signature": "0x00"}'

    assert_error(http.post("/auth/login", content=chunks(), headers={"Content-Type": "application/json"}), 413)
