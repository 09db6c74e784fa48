"""GET /jobs/{id} and /health on a gateway connected to the embedded chain (chain fixtures live here)."""

import httpx

from contracts import JobStatus


def test_job_view_shows_chain_state_and_phases_in_order(client, workers, gateway, model, feeds):
    job = client.submit(model, feeds, redundancy=3)
    workers.run(job.job_id)
    assert job.wait(timeout=30).status == JobStatus.FINALIZED
    view = httpx.get(f"{gateway.url}/jobs/{job.job_id}").json()
    assert view["status"] == "FINALIZED" and view["job"]["result_hash"] == job.info().result_hash
    assert view["job"]["program_hash"] == model.hash and view["job"]["fee"] == str(10**16)
    assert sorted(view["assigned_workers"]) == sorted(workers.clients)
    phases = [p["name"] for p in view["phases"]]
    assert phases[0] == "JobSubmitted" and phases[-1] == "JobFinalized"
    assert phases.index("WorkerAssigned") < phases.index("Committed") < phases.index("Revealed")
    blocks = [e["block_number"] for e in view["events"]]
    assert blocks == sorted(blocks) and all(e["timestamp"] > 0 for e in view["events"])
    assert sum(e["name"] == "Revealed" for e in view["events"]) == 3


def test_job_view_of_a_job_that_does_not_exist_is_404(gateway):
    response = httpx.get(f"{gateway.url}/jobs/999999")
    assert response.status_code == 404 and response.json()["error"] == "job_not_found"


def test_job_id_that_is_not_a_number_is_400(gateway):
    assert httpx.get(f"{gateway.url}/jobs/abc").status_code == 400


def test_health_reports_the_connected_chain(chain, gateway, market_address):
    body = httpx.get(f"{gateway.url}/health").json()
    assert body["status"] == "ok" and body["chain"]["connected"] is True
    assert body["chain"]["market"] == market_address and body["chain"]["chain_id"] == chain.w3.eth.chain_id
