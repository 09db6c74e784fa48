"""`vinfer demo`: the whole system in one process, from wallet login to a verified result.

Embedded py-evm chain, the market contract, the gateway on loopback and N worker threads; then, as
a requester, log in with Sign-In with Ethereum, upload the bundled digits model, submit a batch with
redundancy 3, follow it on chain, and check the result. `--byzantine N` makes N workers lie, to show
the escalation round, the slash and the still-correct result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

SHOWN_PHASES = {"commit", "reveal", "assign", "finalize", "refuse", "silent", "missed"}
SLASH_REASONS = {1: "revealed a wrong result", 2: "stayed silent"}


@dataclass
class DemoResult:
    job_id: int
    status: str
    rounds: int
    result_hash: str
    predictions: list[int]
    labels: list[int]
    verified: bool
    slashed: dict[str, int] = field(default_factory=dict)
    gas_used: int = 0
    seconds: float = 0.0
    liars: list[str] = field(default_factory=list)
    story: list[str] = field(default_factory=list)


def example_files() -> dict[str, Path]:
    """The bundled digits model and its calibration images (verifier/examples), and a labelled batch of
    held-out test images (worker/data: scikit-learn digits from the split the model was not trained on)."""
    examples = Path(str(resources.files("verifier").joinpath("examples")))
    files = {"model": examples / "digits_cnn.onnx", "calibration": examples / "digits_calibration.npz",
             "inputs": Path(str(resources.files("worker").joinpath("data"))) / "digits_test.npz"}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise FileNotFoundError(f"the bundled example model is missing ({', '.join(missing)}): run `make example`")
    return files


def workers_needed(redundancy: int, params: dict) -> int:
    """The first round plus enough fresh honest workers to settle the wide round: it asks for
    growth*k+1 workers and needs quorumBps of that size agreeing (the contract runs a smaller round
    only when it can still reach that quorum)."""
    target = params["growth"] * redundancy + 1
    return redundancy + -(-target * params["quorum_bps"] // 10_000)


def run_demo(workers: int = 5, byzantine: int = 0, batch: int = 16, redundancy: int = 3, console: Any = None,
             market_params: dict | None = None) -> DemoResult:
    """With `byzantine` liars, the first round is drawn from the `redundancy` workers registered
    before the job (the liars among them), and the wide round's workers register once it is drawn:
    so the demo always shows an escalation instead of waiting for the draw to pick a liar."""
    from rich.console import Console

    from contracts import DEFAULT_PARAMS
    from sdk import Client
    from worker.network import LocalNetwork

    if byzantine >= redundancy:
        raise ValueError(f"--byzantine {byzantine} would make the whole first round of {redundancy} lie: "
                         "unanimous liars are the f^k risk that redundancy prices, not something a demo can catch")
    console = console or Console()
    files = example_files()
    started = time.monotonic()
    params = {**DEFAULT_PARAMS, **(market_params or {})}
    if byzantine:
        workers = max(workers, workers_needed(redundancy, params))
    with LocalNetwork(market_params=market_params, on_event=lambda e: _show_worker_event(console, e)) as net:
        console.rule("[bold]vinfer demo")
        console.print(f"chain      embedded py-evm (chain id {net.w3.eth.chain_id})")
        console.print(f"market     {net.market_address}")
        console.print(f"gateway    {net.gateway_url}")
        first = redundancy if byzantine else workers
        handles = [net.add_worker(byzantine="lie" if index < byzantine else None, start=not byzantine) for index in range(first)]
        liars = [h.address for h in handles if h.byzantine]
        console.print(f"workers    {first} registered with 1 ETH stake each"
                      + (f", {byzantine} of them lying: {', '.join(_short(a) for a in liars)}" if byzantine else ""))

        console.rule("requester")
        client = Client.login(net.gateway_url, net.w3, net.requester.key, net.market_address)
        console.print(f"logged in  {net.requester.address} with Sign-In with Ethereum")
        calibration = dict(np.load(files["calibration"]))
        model = client.upload_model(files["model"], calibration=calibration)
        console.print(f"model      {files['model'].name} compiled to a fixed-point program {model.hash}")
        data = np.load(files["inputs"])
        feeds = {name: data[name][:batch] for name in data.files if name != "labels"}
        labels = [int(v) for v in data["labels"][:batch]]
        job = client.submit(model, feeds, redundancy=redundancy)
        console.print(f"submitted  job {job.job_id}: a batch of {len(labels)} digits, redundancy {redundancy}")
        if byzantine:  # the first round's nodes start only once the wide round's workers are registered
            net.wait_for(lambda: job.advance() or job.status().name != "SUBMITTED", 60, "the first round to be drawn")
            target = params["growth"] * redundancy + 1
            console.print(f"workers    {workers - first} more honest workers register: a disagreement escalates to a round "
                          f"of up to {target} fresh workers that needs {-(-target * params['quorum_bps'] // 10_000)} "
                          "of them to agree")
            for _ in range(workers - first):
                net.add_worker()
            for handle in handles:
                net.start_worker(handle)
        job.track_progress(poll_interval=0.25)

        outputs = job.result(verify=True)
        predictions = [int(v) for v in np.argmax(outputs[0].reshape(len(labels), -1), axis=1)]
        verification = client.verify(job.job_id, recompute=True)
        result = _summarise(net, job.job_id, predictions, labels, verification, liars)
        result.seconds = time.monotonic() - started
        _print_result(console, net, result, verification)
        return result


def _summarise(net: Any, job_id: int, predictions: list[int], labels: list[int], verification: Any, liars: list[str]) -> DemoResult:
    client = net.client(net.requester)
    job = client.get_job(job_id)
    slashed: dict[str, int] = {}
    blocks: set[int] = set()
    story: list[str] = []
    for event in client.events(job_id=job_id):
        blocks.add(event.block_number)
        args = event.args
        if event.name == "Slashed":
            slashed[args["worker"]] = slashed.get(args["worker"], 0) + int(args["amount"])
            story.append(f"block {event.block_number}: {_short(args['worker'])} slashed {int(args['amount']) / 1e18:.3f} ETH "
                         f"({SLASH_REASONS.get(int(args['reason']), args['reason'])})")
        elif event.name == "Escalated":
            story.append(f"block {event.block_number}: the first round disagreed -> escalated to round {args['round']} "
                         f"(asks for {args['size']} fresh workers)")
        elif event.name == "JobFinalized":
            story.append(f"block {event.block_number}: finalized with {args['resultHash']}")
    rewarded = [e for e in client.events(job_id=job_id, names=("Rewarded",))]
    if rewarded:
        total = sum(int(e.args["amount"]) for e in rewarded)
        story.append(f"{len(rewarded)} workers whose reveal matched shared {total / 1e18:.4f} ETH (fee + slashed stake)")
    gas = _gas_of_job_transactions(net, job_id)
    return DemoResult(job_id=job_id, status=job.status.name, rounds=int(job.round), result_hash=_hex(job.result_hash),
                      predictions=predictions, labels=labels, verified=bool(getattr(verification, "ok", True)),
                      slashed=slashed, gas_used=gas, liars=liars, story=story)


def _gas_of_job_transactions(net: Any, job_id: int) -> int:
    """Gas of every transaction that touched this job (submit, assign, commits, reveals, finalize)."""
    client = net.client(net.requester)
    tx_hashes = {_hex(e.tx_hash) for e in client.events(job_id=job_id)}
    return sum(int(net.w3.eth.get_transaction_receipt(tx)["gasUsed"]) for tx in tx_hashes)


def _print_result(console: Any, net: Any, result: DemoResult, verification: Any) -> None:
    from rich.table import Table

    console.rule("result")
    table = Table(title=f"job {result.job_id}: predictions vs true labels", show_header=False)
    table.add_column("")
    for index in range(len(result.labels)):
        table.add_column(str(index), justify="center")
    table.add_row("predicted", *[str(p) if p == l else f"[red]{p}" for p, l in zip(result.predictions, result.labels)])
    table.add_row("label", *[str(l) for l in result.labels])
    console.print(table)
    correct = sum(p == l for p, l in zip(result.predictions, result.labels))
    console.print(f"accuracy      {correct}/{len(result.labels)}")
    console.print(f"status        {result.status} after {result.rounds} round(s)")
    console.print(f"result hash   {result.result_hash} (on chain)")
    for name, passed, detail in _checks(verification):
        mark = "[dim]skip[/dim]" if passed is None else "[green]ok  [/green]" if passed else "[red]FAIL[/red]"
        console.print(f"check  {mark} {name}" + (f": {detail}" if detail else ""))
    for line in result.story:
        console.print(f"on chain      {line}", highlight=False)
    console.print(f"gas           {result.gas_used:,} for the job's transactions")
    console.print(f"time          {result.seconds:.1f} s")


def _checks(verification: Any) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) rows from the SDK's Verification."""
    rows = []
    for check in getattr(verification, "checks", []) or []:
        if isinstance(check, tuple):
            name, passed, *rest = check
            rows.append((str(name), bool(passed), str(rest[0]) if rest else ""))
        else:
            rows.append((str(getattr(check, "name", check)), getattr(check, "passed", None),
                         str(getattr(check, "detail", "") or "")))
    return rows


def _show_worker_event(console: Any, event: dict) -> None:
    if event.get("phase") not in SHOWN_PHASES:
        return
    parts = [f"worker {event.get('index', '?')} {_short(event['worker'])}", f"{event['phase']:<8}"]
    for key in ("job", "round", "gas", "error", "note"):
        if key in event:
            parts.append(f"{key}={event[key]}")
    console.print("  " + " ".join(parts), style="dim" if event["phase"] not in ("refuse", "missed") else "yellow", highlight=False)


def _short(address: str) -> str:
    return f"{address[:6]}..{address[-4:]}"


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)
