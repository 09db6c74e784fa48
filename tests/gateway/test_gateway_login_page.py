"""The /login page in headless Chromium, driven over the DevTools protocol. The page talks to an
injected EIP-1193 provider whose personal_sign is answered by a Python signer holding a real key,
so the gateway verifies a real secp256k1 signature made over exactly the bytes the page built."""

import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

PROVIDER = """
window.ethereum = {
  request: async ({method, params}) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [%(account)s];
    if (method === "eth_chainId") return %(chain_id)s;
    if (method === "personal_sign") {
      const response = await fetch(%(signer)s, {method: "POST", body: JSON.stringify(params)});
      if (!response.ok) throw new Error("signer refused: " + await response.text());
      return (await response.json()).signature;
    }
    throw new Error("unsupported method " + method);
  },
};
"""


class Signer:
    """A loopback HTTP endpoint that signs personal_sign requests with one key, as a wallet would."""

    def __init__(self, account):
        self.account, self.messages = account, []
        signer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                message_hex, address = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if address.lower() != signer.account.address.lower():
                    self._reply(403, {"error": "not my address"})
                    return
                message = bytes.fromhex(message_hex.removeprefix("0x"))
                signer.messages.append(message.decode())
                signature = signer.account.sign_message(encode_defunct(primitive=message)).signature
                self._reply(200, {"signature": "0x" + bytes(signature).hex()})

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sign"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class DevTools:
    """Just enough of the Chrome DevTools protocol: send a command, wait for its answer."""

    def __init__(self, websocket_url: str):
        from websockets.sync.client import connect

        self.ws, self.next_id = connect(websocket_url, max_size=None), 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        devtools = DevTools(page["webSocketDebuggerUrl"])
        yield devtools
        devtools.ws.close()
    finally:
        process.terminate()
        process.wait(10)


def test_login_page_gets_a_token_from_a_wallet_signature(browser, gateway):
    account = Account.create()
    signer = Signer(account)
    try:
        browser.send("Page.enable")
        browser.send("Page.addScriptToEvaluateOnNewDocument", source=PROVIDER % {
            "account": json.dumps(account.address.lower()), "chain_id": json.dumps(hex(31337)),
            "signer": json.dumps(signer.url)})
        browser.send("Page.navigate", url=gateway.url + "/login")
        deadline = time.monotonic() + 20
        while browser.evaluate("document.readyState") != "complete" or not browser.evaluate("!!window.ethereum"):
            assert time.monotonic() < deadline, "the login page did not load"
            time.sleep(0.1)
        browser.evaluate("document.getElementById('connect').click()")
        deadline = time.monotonic() + 30
        while not (token := browser.evaluate("document.getElementById('token').value")):
            status = browser.evaluate("document.getElementById('status').textContent")
            assert time.monotonic() < deadline, f"no token; the page says: {status!r}"
            time.sleep(0.1)
    finally:
        signer.server.shutdown()

    assert len(signer.messages) == 1
    assert signer.messages[0].startswith(f"{gateway.settings.domain} wants you to sign in with your Ethereum account:\n"
                                         f"{account.address}\n")
    me = httpx.get(gateway.url + "/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["address"] == account.address
    assert browser.evaluate("document.getElementById('address').textContent") == account.address


def test_login_page_explains_a_missing_wallet(browser, gateway):
    browser.send("Page.navigate", url=gateway.url + "/login")
    deadline = time.monotonic() + 20
    while browser.evaluate("document.readyState") != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    browser.evaluate("document.getElementById('connect').click()")
    deadline = time.monotonic() + 10
    while "MetaMask" not in (browser.evaluate("document.getElementById('status').textContent") or ""):
        assert time.monotonic() < deadline, "the page did not explain that no wallet is present"
        time.sleep(0.1)
