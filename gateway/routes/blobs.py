"""Content-addressed blobs: programs, inputs and outputs, named by the keccak256 of their bytes."""

from pathlib import Path

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from gateway.deps import CurrentAddress, GatewayDep, Store
from gateway.errors import too_large, unprocessable
from gateway.store import parse_hash

router = APIRouter(prefix="/blobs", tags=["blobs"])
PROGRAM_MAGIC = b"VFP"


class BlobOut(BaseModel):
    hash: str
    size: int
    created: bool


@router.put("", response_model=BlobOut)
async def put_blob(
    request: Request,
    address: CurrentAddress,
    gateway: GatewayDep,
    store: Store,
    content_length: int | None = Header(None),
    x_expected_hash: str | None = Header(None, description="Reject the upload unless its bytes hash to this"),
) -> BlobOut:
    """Store the raw request body under its keccak256. Programs are validated first; the upload counts
    against the caller's storage quota (re-uploading stored bytes is free)."""
    if content_length is not None and content_length > store.max_bytes:
        raise too_large("blob_too_large", f"a blob may be at most {store.max_bytes} bytes")

    def accept(path: Path, blob_hash: str, size: int) -> None:
        _reject_invalid_program(path)
        if not gateway.quotas.reserve(address, size):
            used = gateway.quotas.used(address)
            raise too_large("quota_exceeded", f"{address} has stored {used} of {gateway.quotas.quota_bytes} bytes; "
                                              f"this {size}-byte blob does not fit")

    blob = await store.put(request.stream(), expected_hash=x_expected_hash, accept=accept)
    return BlobOut(hash=blob.hash, size=blob.size, created=blob.created)


@router.get("/{blob_hash}", response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def get_blob(blob_hash: str, store: Store) -> FileResponse:
    """The bytes stored under `blob_hash` (checked against it before they are sent). Public: fetchers
    re-hash what they get, so the gateway is not trusted for content."""
    path = store.open_verified(blob_hash)
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"ETag": f'"{parse_hash(blob_hash)}"', "Cache-Control": "public, max-age=31536000, immutable"})


@router.head("/{blob_hash}")
def head_blob(blob_hash: str, store: Store) -> Response:
    """200 with Content-Length when the blob is stored, 404 otherwise."""
    size = store.size_of(blob_hash)
    if size is None:
        return Response(status_code=404)
    return Response(status_code=200, headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})


def _reject_invalid_program(path: Path) -> None:
    """A blob that starts like a program must load as one and use only supported ops (422 otherwise)."""
    with path.open("rb") as src:
        if src.read(len(PROGRAM_MAGIC)) != PROGRAM_MAGIC:
            return
    from verifier import ops
    from verifier.errors import VerifierError
    from verifier.program import Program

    try:
        program = Program.from_bytes(path.read_bytes())
    except VerifierError as exc:
        raise unprocessable("invalid_program", f"the program does not load: {exc}") from exc
    except Exception as exc:  # a loader bug must still reject, not store, the bytes
        raise unprocessable("invalid_program", f"the program does not load: {type(exc).__name__}: {exc}") from exc
    for node in program.nodes:
        if ops.lookup(node.op) is None:
            raise unprocessable("unsupported_op", f"unsupported op {node.op!r} at node {node.name!r}")
