"""Every knob of the gateway, in one place. Each field can be set by an environment variable
`VINFER_GATEWAY_<FIELD>` (e.g. VINFER_GATEWAY_RPC_URL) or by `vinfer gateway` flags."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VINFER_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        None,
        description="Origin users reach the gateway at (scheme://host[:port]); SIWE messages must name its host "
        "as their domain and a URI under it. Defaults to http://host:port.",
    )
    data_dir: Path = Path("vinfer-gateway-data")
    database_url: str | None = Field(None, description="SQLAlchemy URL; defaults to SQLite in data_dir.")
    blob_dir: Path | None = Field(None, description="Where blobs live; defaults to data_dir/blobs.")

    rpc_url: str | None = Field(None, description="JSON-RPC endpoint of the chain (jobs view, EIP-1271 wallets).")
    market_address: str | None = None
    market_from_block: int = Field(0, ge=0, description="Block the market was deployed in: event scans start there.")
    chain_id: int | None = Field(None, description="Chain id logins must name; read from the RPC when unset.")

    token_secret: str | None = Field(None, description="HMAC key for tokens; generated into data_dir when unset.")
    token_ttl_seconds: int = Field(3600, gt=0)
    nonce_ttl_seconds: int = Field(300, gt=0)
    max_message_age_seconds: int = Field(600, gt=0, description="How old a SIWE Issued At may be.")
    clock_skew_seconds: int = Field(60, ge=0, description="How far in the future an Issued At may be.")

    max_blob_bytes: int = Field(64 * MiB, gt=0)
    max_request_bytes: int = Field(64 * 1024, gt=0, description="Body limit of every request but blob uploads.")
    max_pending_nonces: int = Field(100_000, gt=0, description="Issued, unused, unexpired nonces at most.")
    quota_bytes_per_address: int = Field(1024 * MiB, gt=0)

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the gateway as users see it, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def domain(self) -> str:
        """The RFC 3986 authority (host[:port]) SIWE messages must carry."""
        return urlsplit(self.origin).netloc

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'gateway.sqlite3').resolve()}"
