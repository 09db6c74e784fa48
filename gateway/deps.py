"""What route handlers receive by injection: the gateway's parts and the caller's address."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import LoginPolicy, TokenClaims, TokenSigner
from gateway.db import Nonces, Quotas
from gateway.errors import unauthorized
from gateway.settings import GatewaySettings
from gateway.store import BlobStore


@dataclass
class Gateway:
    """The parts one gateway instance is made of; lives on app.state.gateway."""

    settings: GatewaySettings
    policy: LoginPolicy
    nonces: Nonces
    quotas: Quotas
    tokens: TokenSigner
    store: BlobStore
    w3: Any | None  # web3.Web3, when a chain is configured
    market_address: str | None
    market: Any | None = None  # contracts.MarketClient for reads, made on first use


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


_bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/login or the /login page")


def current_claims(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing_token", "this endpoint needs an Authorization: Bearer <token> header")
    return gateway.tokens.verify(credentials.credentials)


def current_address(claims: Annotated[TokenClaims, Depends(current_claims)]) -> str:
    return claims.address


def get_store(gateway: Annotated[Gateway, Depends(get_gateway)]) -> BlobStore:
    return gateway.store


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
CurrentClaims = Annotated[TokenClaims, Depends(current_claims)]
CurrentAddress = Annotated[str, Depends(current_address)]
Store = Annotated[BlobStore, Depends(get_store)]
