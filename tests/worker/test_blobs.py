"""Fetching blobs without trusting the gateway: keccak checked, retried with backoff, cached."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verifier.encoding import keccak_hex
from worker.blobs import BlobUnavailable, GatewayBlobs


class FlakyGateway:
    """A real HTTP server holding blobs; it can corrupt or fail its next N answers."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.corrupt_next = 0
        self.fail_next = 0
        self.gets = 0
        self.tokens_seen: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                gateway.gets += 1
                data = gateway.blobs.get(self.path.rsplit("/", 1)[-1])
                if gateway.fail_next:
                    gateway.fail_next -= 1
                    return self._reply(503, b"down")
                if data is None:
                    return self._reply(404, b"not found")
                if gateway.corrupt_next:
                    gateway.corrupt_next -= 1
                    data = bytes([data[0] ^ 1]) + data[1:]
                self._reply(200, data)

            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.tokens_seen.append(self.headers.get("Authorization", ""))
                gateway.blobs[keccak_hex(body)] = body
                self._reply(200, ('{"hash": "%s"}' % keccak_hex(body)).encode())

            def _reply(self, code, body):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, data: bytes) -> str:
        self.blobs[keccak_hex(data)] = data
        return keccak_hex(data)


@pytest.fixture
def gateway():
    g = FlakyGateway()
    yield g
    g.server.shutdown()


def test_fetch_returns_bytes_matching_the_hash(gateway):
    h = gateway.put(b"program bytes")
    assert GatewayBlobs(gateway.url).fetch(h) == b"program bytes"


def test_corrupted_answer_is_retried_until_the_bytes_match(gateway):
    h = gateway.put(b"input bytes")
    gateway.corrupt_next = 2
    assert GatewayBlobs(gateway.url, backoff_s=0.01).fetch(h) == b"input bytes"
    assert gateway.gets == 3


def test_gateway_that_always_corrupts_is_refused(gateway):
    h = gateway.put(b"input bytes")
    gateway.corrupt_next = 100
    with pytest.raises(BlobUnavailable, match="hashing to"):
        GatewayBlobs(gateway.url, retries=2, backoff_s=0.01).fetch(h)


def test_gateway_that_is_down_is_retried(gateway):
    h = gateway.put(b"x")
    gateway.fail_next = 2
    assert GatewayBlobs(gateway.url, backoff_s=0.01).fetch(h) == b"x"


def test_unreachable_gateway_is_a_clear_error():
    with pytest.raises(BlobUnavailable, match="ConnectError"):
        GatewayBlobs("http://127.0.0.1:9", retries=1, backoff_s=0.01).fetch("0x" + "00" * 32)


def test_oversized_blob_is_refused(gateway):
    h = gateway.put(b"y" * 1000)
    with pytest.raises(BlobUnavailable, match="larger than"):
        GatewayBlobs(gateway.url, retries=0, max_bytes=100).fetch(h)


def test_cached_program_is_not_fetched_again(gateway):
    h = gateway.put(b"program")
    blobs = GatewayBlobs(gateway.url)
    blobs.fetch(h, cache=True)
    blobs.fetch(h, cache=True)
    assert gateway.gets == 1


def test_upload_sends_the_login_token_and_checks_the_stored_hash(gateway):
    blobs = GatewayBlobs(gateway.url, token=lambda: "tok")
    assert blobs.upload(b"output") == keccak_hex(b"output")
    assert gateway.tokens_seen == ["Bearer tok"]


def test_upload_without_login_is_refused(gateway):
    with pytest.raises(BlobUnavailable, match="no gateway login"):
        GatewayBlobs(gateway.url).upload(b"output")
