"""The gateway application: `create_app(settings)` builds one FastAPI app with its own database,
blob store, token key and (optionally) chain connection."""

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from gateway.auth import LoginPolicy, TokenSigner, load_or_create_secret
from gateway.db import Nonces, Quotas, open_database
from gateway.deps import Gateway
from gateway.errors import install_error_handlers
from gateway.limits import RequestSizeLimit
from gateway.routes import auth, blobs, jobs
from gateway.settings import GatewaySettings
from gateway.store import BlobStore

log = logging.getLogger("vinfer.gateway")
DEFAULT_CHAIN_ID = 1
LOGIN_PAGE = Path(__file__).parent / "static" / "login.html"


def create_app(settings: GatewaySettings | None = None, *, w3=None) -> FastAPI:
    """`w3`: a connected web3.Web3 to use instead of settings.rpc_url (the embedded chain passes its own)."""
    settings = settings or GatewaySettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if w3 is None and settings.rpc_url:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 30}))
    engine = open_database(settings.resolved_database_url)
    secret = settings.token_secret.encode() if settings.token_secret else load_or_create_secret(
        settings.data_dir / "token_secret")
    gateway = Gateway(
        settings=settings,
        policy=LoginPolicy(domain=settings.domain, origin=settings.origin, chain_id=_chain_id(settings, w3),
                           max_message_age_seconds=settings.max_message_age_seconds,
                           clock_skew_seconds=settings.clock_skew_seconds),
        nonces=Nonces(engine, settings.nonce_ttl_seconds, settings.max_pending_nonces),
        quotas=Quotas(engine, settings.quota_bytes_per_address),
        tokens=TokenSigner(secret, settings.token_ttl_seconds),
        store=BlobStore(settings.resolved_blob_dir, settings.max_blob_bytes),
        w3=w3,
        market_address=settings.market_address,
    )
    app = FastAPI(title="vinfer gateway", version="0.1.0",
                  description="Sign-In with Ethereum, content-addressed blobs, and a view of jobs on chain.")
    app.state.gateway = gateway
    install_error_handlers(app)
    # blob uploads stream and count their bytes against max_blob_bytes themselves (gateway/store.py)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes, exempt={("PUT", "/blobs")})
    for module in (auth, blobs, jobs):
        app.include_router(module.router)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page() -> str:
        return LOGIN_PAGE.read_text()

    return app


def _chain_id(settings: GatewaySettings, w3) -> int:
    if settings.chain_id is not None:
        return settings.chain_id
    if w3 is not None:
        return int(w3.eth.chain_id)
    log.warning("no chain configured: logins must name chain id %d", DEFAULT_CHAIN_ID)
    return DEFAULT_CHAIN_ID
