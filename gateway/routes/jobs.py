"""A job's state and history, read from the chain through the contracts binding (the chain stays
the source of truth; this view only saves clients from decoding events themselves)."""

import dataclasses
import enum
from typing import Any

from fastapi import APIRouter, Path

from gateway.deps import GatewayDep
from gateway.errors import ApiError, not_found

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}")
def get_job(gateway: GatewayDep, job_id: int = Path(ge=0, lt=2**256)) -> dict:
    """The job as stored on chain, its assigned workers, and every event it emitted (with block
    numbers and times), oldest first. `phases` gives the first block each kind of event appeared in."""
    market = _market(gateway)
    try:
        job = market.get_job(job_id)
        if int(job.status) == 0:
            raise not_found("job_not_found", f"no job {job_id} on market {gateway.market_address}")
        history = market.events(job_id=job_id, from_block=gateway.settings.market_from_block)
        times: dict[int, int] = {}  # one block read per block, however many events it holds
        events = [_event_json(gateway.w3, event, times) for event in history]
        assigned, block_number = market.assigned_workers(job_id), gateway.w3.eth.block_number
    except ApiError:
        raise
    except Exception as exc:  # the RPC is down or answers nonsense: say so instead of a bare 500
        raise ApiError(503, "chain_unavailable", f"cannot read job {job_id} from the chain: {exc}") from exc
    phases: dict[str, dict] = {}
    for event in events:
        phases.setdefault(event["name"], {"block_number": event["block_number"], "timestamp": event["timestamp"]})
    return {
        "job": _jsonable(job),
        "status": job.status.name if isinstance(job.status, enum.Enum) else str(job.status),
        "assigned_workers": assigned,
        "events": events,
        "phases": [{"name": name, **where} for name, where in phases.items()],
        "block_number": block_number,
    }


@router.get("/health")
def health(gateway: GatewayDep) -> dict:
    """Liveness, and whether the chain answers."""
    chain: dict[str, Any] = {"configured": gateway.w3 is not None, "market": gateway.market_address}
    if gateway.w3 is not None:
        try:
            chain.update(connected=True, block_number=gateway.w3.eth.block_number, chain_id=gateway.policy.chain_id)
        except Exception as exc:  # an unreachable RPC is a state to report, not a crash
            chain.update(connected=False, error=str(exc)[:200])
    return {"status": "ok", "chain": chain}


def _market(gateway):
    if gateway.w3 is None or gateway.market_address is None:
        raise ApiError(503, "no_chain", "this gateway has no chain configured (--rpc and --market)")
    if gateway.market is None:
        from contracts import MarketClient

        gateway.market = MarketClient(gateway.w3, gateway.market_address, None)  # reads only: no account
    return gateway.market


def _event_json(w3, event, times: dict[int, int]) -> dict:
    if event.block_number not in times:
        times[event.block_number] = int(w3.eth.get_block(event.block_number)["timestamp"])
    tx_hash = event.tx_hash.hex() if isinstance(event.tx_hash, (bytes, bytearray)) else str(event.tx_hash)
    return {"name": event.name, "block_number": event.block_number, "timestamp": times[event.block_number],
            "tx_hash": tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash, "args": _jsonable(dict(event.args))}


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)  # JSON numbers lose precision above 2^53 (fees in wei, hashes as ints)
    return value
