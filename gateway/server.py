"""Run the gateway under a real uvicorn server in a background thread (the demo and the tests)."""

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings


@dataclass
class RunningServer:
    url: str
    settings: GatewaySettings
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_thread(settings: GatewaySettings, *, w3=None, startup_timeout: float = 20.0) -> RunningServer:
    """Start the gateway on settings.host (port 0: a free port) and return once it accepts requests.
    The SIWE domain follows the bound port unless settings.public_url says otherwise."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))  # bound here, so port 0 cannot race another process
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    app = create_app(settings, w3=w3)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"vinfer-gateway-{settings.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the gateway did not start on {settings.host}:{settings.port}")
        time.sleep(0.02)
    return RunningServer(url=f"http://{settings.host}:{settings.port}", settings=settings, _server=server, _thread=thread)
