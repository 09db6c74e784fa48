"""A worker's standing, read from the chain (the source of truth), for `vinfer worker status`."""

from __future__ import annotations

from typing import Any

FINAL = ("FINALIZED", "UNRESOLVED")


def worker_report(client: Any, address: str) -> dict[str, Any]:
    """Stake, activity, open assignments, rewards earned/pending and slashes of `address`."""
    me = address.lower()
    assigned: dict[int, int] = {}
    slashed_wei, slashes, withdrawn_wei, earned_wei = 0, [], 0, 0
    for event in client.events():
        args = event.args
        who = str(args.get("worker", args.get("account", args.get("to", "")))).lower()
        if who != me:
            continue
        if event.name == "WorkerAssigned":
            assigned[int(args["jobId"])] = int(args["round"])
        elif event.name == "Slashed":
            slashed_wei += int(args["amount"])
            slashes.append(f"job {args['jobId']}: {args['amount']} wei")
        elif event.name == "Rewarded":
            earned_wei += int(args["amount"])
        elif event.name == "Withdrawn":
            withdrawn_wei += int(args["amount"])
    open_jobs = []
    for job_id, round_ in sorted(assigned.items()):
        job = client.get_job(job_id)
        if job.status.name not in FINAL and job.round == round_:
            open_jobs.append(f"{job_id} (round {round_}, {job.status.name})")
    pending = client.pending_withdrawal(address)
    return {
        "address": address,
        "stake (wei)": client.stake_of(address),
        "active": client.is_active(address),
        "open assignments": ", ".join(open_jobs) or "none",
        "jobs assigned": len(assigned),
        "earned (wei)": earned_wei,
        "pending (wei)": pending,
        "withdrawn (wei)": withdrawn_wei,
        "slashed (wei)": slashed_wei,
        "slashes": "; ".join(slashes) or "none",
    }
