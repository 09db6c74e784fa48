"""`vinfer gateway` as a user starts it: a separate process that serves until stopped."""

import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vinfer_gateway_serves_health_login_page_and_nonces(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from sdk.cli import main; main()", "gateway", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not answer within 60 s"
            time.sleep(0.2)
        assert "window.ethereum" in httpx.get(f"{url}/login").text
        assert httpx.get(f"{url}/auth/nonce").json()["domain"] == f"127.0.0.1:{port}"
        assert (tmp_path / "data" / "gateway.sqlite3").exists()
        secret = tmp_path / "data" / "token_secret"
        assert secret.exists() and secret.stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        process.wait(10)
