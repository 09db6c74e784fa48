"""Content-addressed blobs against a real server: round trips, limits, quotas, and program validation."""

import os

import pytest

from gateway_helpers import MAX_BLOB, QUOTA, assert_error
from verifier.encoding import keccak_hex
from verifier.program import Program, ProgramNode, TensorInfo


def stored_files(gateway) -> list[str]:
    root = gateway.settings.resolved_blob_dir
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def program_bytes(op: str = "Relu") -> bytes:
    x, y = TensorInfo("x", (1, 4), "float32", 8), TensorInfo("y", (1, 4), "float32", 8)
    program = Program(inputs=[x], outputs=[y], nodes=[ProgramNode(op, "node0", ["x"], ["y"], {}, {}, [8])],
                      fracs={"x": 8, "y": 8})
    return program.to_bytes()


def test_blob_round_trips_under_its_keccak(http, auth):
    data = os.urandom(10_000)
    put = http.put("/blobs", content=data, headers=auth)
    assert put.status_code == 200, put.text
    assert put.json()["hash"] == keccak_hex(data) and put.json()["size"] == len(data)
    got = http.get(f"/blobs/{keccak_hex(data)}")
    assert got.status_code == 200 and got.content == data


def test_head_reports_the_size_of_a_stored_blob(http, auth):
    data = os.urandom(123)
    http.put("/blobs", content=data, headers=auth)
    head = http.head(f"/blobs/{keccak_hex(data)}")
    assert head.status_code == 200 and head.headers["content-length"] == "123"
    assert http.head(f"/blobs/{keccak_hex(b'never stored')}").status_code == 404


def test_blob_hash_is_case_insensitive(http, auth):
    data = os.urandom(64)
    blob_hash = http.put("/blobs", content=data, headers=auth).json()["hash"]
    assert http.get(f"/blobs/0x{blob_hash[2:].upper()}").content == data


def test_upload_without_a_token_is_rejected_and_stores_nothing(http, gateway):
    before = stored_files(gateway)
    assert_error(http.put("/blobs", content=b"anonymous bytes"), 401, "missing_token")
    assert stored_files(gateway) == before


def test_unknown_blob_is_404(http):
    assert_error(http.get(f"/blobs/{keccak_hex(b'nothing')}"), 404, "blob_not_found")


@pytest.mark.parametrize("bad", ["abc", "0x1234", "0x" + "g" * 64, "0x..%5C..%5Cetc%5Cpasswd", "0x" + "a" * 65])
def test_malformed_blob_hash_is_400_before_touching_the_disk(http, bad):
    assert_error(http.get(f"/blobs/{bad}"), 400, "invalid_hash")


def test_oversize_upload_with_content_length_is_413_and_leaves_nothing(http, gateway, auth):
    before = stored_files(gateway)
    assert_error(http.put("/blobs", content=os.urandom(MAX_BLOB + 1), headers=auth), 413, "blob_too_large")
    assert stored_files(gateway) == before


def test_oversize_streamed_upload_without_content_length_is_413_and_leaves_nothing(http, gateway, auth):
    def chunks():
        for _ in range(MAX_BLOB // 8192 + 2):
            yield os.urandom(8192)

    before = stored_files(gateway)
    response = http.put("/blobs", content=chunks(), headers=auth)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "blob_too_large")
    assert stored_files(gateway) == before


def test_upload_exactly_at_the_limit_is_accepted(http, auth):
    data = os.urandom(MAX_BLOB)
    assert http.put("/blobs", content=data, headers=auth).json()["hash"] == keccak_hex(data)


def test_upload_whose_bytes_do_not_match_the_expected_hash_is_422_and_not_stored(http, gateway, auth):
    data = os.urandom(100)
    claimed = keccak_hex(b"something else")
    assert_error(http.put("/blobs", content=data, headers={**auth, "X-Expected-Hash": claimed}), 422, "hash_mismatch")
    assert http.head(f"/blobs/{keccak_hex(data)}").status_code == 404
    assert http.head(f"/blobs/{claimed}").status_code == 404


def test_bytes_on_disk_that_no_longer_match_their_hash_are_never_served(http, gateway, auth):
    data = os.urandom(500)
    blob_hash = http.put("/blobs", content=data, headers=auth).json()["hash"]
    path = gateway.settings.resolved_blob_dir / blob_hash[2:4] / blob_hash[2:]
    path.write_bytes(b"corrupted" + data[9:])
    assert_error(http.get(f"/blobs/{blob_hash}"), 404, "blob_not_found")
    assert not path.exists()


def test_valid_program_is_accepted(http, auth):
    data = program_bytes("Relu")
    assert http.put("/blobs", content=data, headers=auth).json()["hash"] == Program.from_bytes(data).hash


def test_malformed_program_is_422_and_not_stored(http, auth):
    data = b"VFP\x01\x10\x00\x00\x00{not json at all}" + os.urandom(32)
    response = http.put("/blobs", content=data, headers=auth)
    assert_error(response, 422, "invalid_program")
    assert http.head(f"/blobs/{keccak_hex(data)}").status_code == 404


def test_program_with_an_unsupported_op_is_422_naming_the_op_and_node(http, auth):
    data = program_bytes("NoSuchOp")
    response = http.put("/blobs", content=data, headers=auth)
    assert_error(response, 422, "unsupported_op")
    assert "NoSuchOp" in response.json()["detail"] and "node0" in response.json()["detail"]
    assert http.head(f"/blobs/{keccak_hex(data)}").status_code == 404


def test_upload_over_the_address_quota_is_413_and_not_stored(http, gateway, auth):
    # a fresh login: this address has stored nothing yet
    chunk = MAX_BLOB
    for _ in range(QUOTA // chunk):
        assert http.put("/blobs", content=os.urandom(chunk), headers=auth).status_code == 200
    data = os.urandom(chunk)
    assert_error(http.put("/blobs", content=data, headers=auth), 413, "quota_exceeded")
    assert http.head(f"/blobs/{keccak_hex(data)}").status_code == 404


def test_reuploading_stored_bytes_is_not_charged_to_the_quota(http, auth):
    data = os.urandom(MAX_BLOB)
    for _ in range(QUOTA // MAX_BLOB + 2):
        response = http.put("/blobs", content=data, headers=auth)
        assert response.status_code == 200, response.text
    assert response.json()["created"] is False


def test_openapi_docs_are_served(http):
    assert http.get("/docs").status_code == 200
    assert "/blobs" in http.get("/openapi.json").json()["paths"]


def test_health_without_a_chain_says_so(http):
    assert http.get("/health").json() == {"status": "ok", "chain": {"configured": False, "market": None}}
