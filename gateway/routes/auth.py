"""Sign-In with Ethereum: a nonce, then a signed EIP-4361 message for a bearer token."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from gateway.auth import new_nonce, verify_login
from gateway.deps import CurrentClaims, GatewayDep
from gateway.errors import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


class NonceOut(BaseModel):
    nonce: str
    expires_at: int = Field(description="Unix time after which the nonce is no longer accepted")
    domain: str = Field(description="The domain a SIWE message must name")
    uri: str = Field(description="The URI a SIWE message should carry")
    chain_id: int = Field(description="The chain id a SIWE message must name")


class LoginIn(BaseModel):
    message: str = Field(max_length=8192, description="The EIP-4361 message, exactly as signed")
    signature: str = Field(max_length=8192, description="0x-hex EIP-191 signature (or EIP-1271 wallet signature)")


class TokenOut(BaseModel):
    token: str
    address: str
    expires_at: int


@router.get("/nonce", response_model=NonceOut)
def issue_nonce(gateway: GatewayDep) -> NonceOut:
    """A fresh single-use nonce for a SIWE message, with the domain, URI and chain id to put beside it."""
    nonce = new_nonce()
    expires_at = gateway.nonces.issue(nonce)
    if expires_at is None:
        raise ApiError(503, "too_many_pending_logins", "too many logins are in progress; try again in a minute")
    policy = gateway.policy
    return NonceOut(nonce=nonce, expires_at=int(expires_at), domain=policy.domain, uri=policy.origin,
                    chain_id=policy.chain_id)


@router.post("/login", response_model=TokenOut)
async def login(body: LoginIn, gateway: GatewayDep) -> TokenOut:
    """Exchange a signed SIWE message for a short-lived bearer token carrying the signer's address."""
    address = await run_in_threadpool(
        verify_login, body.message, body.signature, policy=gateway.policy, nonces=gateway.nonces, w3=gateway.w3
    )
    token, claims = gateway.tokens.issue(address)
    return TokenOut(token=token, address=address, expires_at=claims.expires_at)


class MeOut(BaseModel):
    address: str
    issued_at: int
    expires_at: int


@router.get("/me", response_model=MeOut)
def me(claims: CurrentClaims) -> MeOut:
    """What the bearer token says: the address it was issued to and its lifetime."""
    return MeOut(address=claims.address, issued_at=claims.issued_at, expires_at=claims.expires_at)
