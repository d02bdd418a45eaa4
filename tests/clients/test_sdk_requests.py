"""What the SDK puts on the wire for /feedback and batch jobs (per the contract), and how it reads
the answers and refusals, against a tiny real HTTP server: those server routes are being built
elsewhere, so these calls are not yet tested end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from controlplane_client import ControlPlane, ControlPlaneError, ground_truth, outcome
from controlplane_client.dataplane import Job

from tests.clients.recording_server import recording_server

# Pure client code and a local socket: nothing here touches a database.
pytestmark = pytest.mark.single_pass


@pytest.fixture
def server():
    with recording_server() as (url, script):
        yield url, script


def test_feedback_posts_the_items_with_the_service_token_and_reads_what_was_refused(server):
    url, script = server
    script.on(
        "POST",
        "/feedback/demo",
        (
            200,
            {"accepted": 1, "rejected": [{"index": 1, "code": "unknown_metric", "message": "no metric x"}]},
        ),
    )
    cp = ControlPlane(url, token="svc-1", api_token="user-1")

    result = cp.feedback("demo", [ground_truth("req-9", label=1, row=2), outcome("user-42", "x", 0.5)])

    (seen,) = script.seen
    assert seen.headers["authorization"] == "Bearer svc-1"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {
        "items": [
            {"request_id": "req-9", "row": 2, "label": 1},
            {"unit_key": "user-42", "metric": "x", "value": 0.5},
        ]
    }
    assert result.accepted == 1 and result.rejected[0]["code"] == "unknown_metric"


def test_a_feedback_item_is_a_label_or_a_value_and_an_empty_batch_is_not_sent(server):
    url, script = server
    assert ground_truth("r", value=3.5) == {"request_id": "r", "row": 0, "value": 3.5}
    with pytest.raises(ValueError, match="exactly one"):
        ground_truth("r", label=1, value=2.0)
    with pytest.raises(ValueError, match="at least one"):
        ControlPlane(url, token="t").feedback("demo", [])
    assert script.seen == []


def test_a_dataframe_job_goes_as_csv_and_is_polled_until_it_succeeds(server):
    url, script = server
    script.on("POST", "/predict/demo/jobs", (202, {"job": 17, "status_url": "/predict/demo/jobs/17"}))
    script.on(
        "GET",
        "/predict/demo/jobs/17",
        (200, {"status": "queued", "progress": 0}),
        (200, {"status": "running", "progress": 0.5, "rows": 1}),
        (200, {"status": "succeeded", "progress": 1, "rows": 2, "errors": 0, "results_url": "/r/17.csv"}),
    )
    script.on("GET", "/r/17.csv", (200, b"prediction\n0\n1\n"))
    cp = ControlPlane(url, token="svc-b")
    frame = pd.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"]})

    job = cp.submit_job("demo", frame, variant="v3")
    status = cp.wait_for_job(job, timeout=10, poll_seconds=0.01)
    results = cp.job_results(status)

    submitted = script.seen[0]
    assert (submitted.method, submitted.query) == ("POST", {"variant": ["v3"]})
    assert submitted.headers["content-type"] == "text/csv"
    assert submitted.headers["authorization"] == "Bearer svc-b"
    assert submitted.body.decode().splitlines() == ["a,b", "1.5,x", "2.0,y"]
    assert job == Job("17", "demo", f"{url}/predict/demo/jobs/17")
    assert [s.method for s in script.seen[1:]] == ["GET"] * 4
    assert (status.status, status.rows, status.progress, status.done) == ("succeeded", 2, 1.0, True)
    assert results == b"prediction\n0\n1\n"


def test_row_dicts_go_as_json_lines_and_a_file_by_its_suffix(server, tmp_path):
    url, script = server
    script.on("POST", "/predict/demo/jobs", (202, {"job": "a1", "status_url": f"{url}/predict/demo/jobs/a1"}))
    cp = ControlPlane(url, token="t")
    rows = tmp_path / "rows.ndjson"
    rows.write_text('{"a": 1}\n')

    cp.submit_job("demo", [{"a": 1, "b": None}, {"a": 2, "b": "z"}])
    cp.submit_job("demo", rows)
    cp.submit_job("demo", "a\n1\n", content_type="text/csv")

    first, second, third = script.seen
    assert first.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in first.body.decode().splitlines()] == [
        {"a": 1, "b": None},
        {"a": 2, "b": "z"},
    ]
    assert "variant" not in first.query
    assert (second.headers["content-type"], second.body) == ("application/x-ndjson", b'{"a": 1}\n')
    assert (third.headers["content-type"], third.body) == ("text/csv", b"a\n1\n")
    with pytest.raises(ValueError, match="content_type"):
        cp.submit_job("demo", "a\n1\n")


def test_cancelling_deletes_the_job_and_waiting_gives_up_after_its_timeout(server):
    url, script = server
    script.on("GET", "/predict/demo/jobs/5", (200, {"status": "running", "progress": 0.1}))
    script.on("DELETE", "/predict/demo/jobs/5", (200, {"status": "cancelled"}))
    cp = ControlPlane(url, token="t")
    job = Job("5", "demo", f"{url}/predict/demo/jobs/5")

    with pytest.raises(ControlPlaneError, match="still running") as timed_out:
        cp.wait_for_job(job, timeout=0.05, poll_seconds=0.01)
    cp.cancel_job(job)

    assert timed_out.value.code == "timeout"
    assert script.seen[-1].method == "DELETE" and script.seen[-1].path == "/predict/demo/jobs/5"


def test_a_refusal_is_a_control_plane_error_with_the_servers_code_and_words(server):
    url, script = server
    script.on(
        "POST",
        "/feedback/demo",
        (403, {"error": {"code": "scope", "message": "token lacks scope feedback", "details": {"s": 1}}}),
    )
    script.on("GET", "/api/v1/endpoints/demo/", (401, {"detail": "Invalid token."}))
    script.on("POST", "/predict/demo/jobs", (502, b"<html>bad gateway</html>"))
    cp = ControlPlane(url, token="t", api_token="u")

    with pytest.raises(ControlPlaneError) as scope:
        cp.feedback("demo", [outcome("u", "m", 1)])
    with pytest.raises(ControlPlaneError) as drf:
        cp.endpoint("demo")
    with pytest.raises(ControlPlaneError) as proxy:
        cp.submit_job("demo", [{"a": 1}])

    assert (scope.value.status, scope.value.code, scope.value.details) == (403, "scope", {"s": 1})
    assert "token lacks scope feedback" in str(scope.value)
    assert (drf.value.status, drf.value.code, drf.value.message) == (401, "unauthenticated", "Invalid token.")
    assert proxy.value.status == 502 and "bad gateway" in proxy.value.message
    assert script.seen[1].headers["authorization"] == "Token u"


def test_credentials_come_from_arguments_the_environment_or_files_and_a_missing_one_is_named(
    server, monkeypatch, tmp_path
):
    url, script = server
    script.on("POST", "/feedback/demo", (200, {"accepted": 1, "rejected": []}))
    secret = tmp_path / "token"
    secret.write_text("svc-from-file\n")
    monkeypatch.setenv("CONTROLPLANE_URL", url)
    monkeypatch.setenv("CONTROLPLANE_TOKEN_FILE", str(secret))
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    monkeypatch.delenv("CONTROLPLANE_API_TOKEN", raising=False)
    monkeypatch.delenv("CONTROLPLANE_API_TOKEN_FILE", raising=False)

    ControlPlane().feedback("demo", [outcome("u", "m", 1)])
    with pytest.raises(ControlPlaneError, match="CONTROLPLANE_API_TOKEN") as missing:
        ControlPlane().endpoints()

    assert script.seen[0].headers["authorization"] == "Bearer svc-from-file"
    assert missing.value.code == "no_api_token" and len(script.seen) == 1
    with pytest.raises(ControlPlaneError, match="http:// or https://"):
        ControlPlane("127.0.0.1:8000")


def test_listings_follow_the_pages_and_stop_at_the_limit(server):
    url, script = server
    script.on(
        "GET",
        "/api/v1/audit-events/",
        (200, {"count": 3, "next": f"{url}/api/v1/p2", "results": [{"id": 3}]}),
    )
    script.on("GET", "/api/v1/p2", (200, {"count": 3, "next": f"{url}/api/v1/p3", "results": [{"id": 2}]}))
    script.on("GET", "/api/v1/p3", (200, {"count": 3, "next": None, "results": [{"id": 1}]}))
    cp = ControlPlane(url, api_token="u")

    assert [e["id"] for e in cp.audit_events(endpoint="demo", limit=None)] == [3, 2, 1]
    assert [e["id"] for e in cp.audit_events(limit=2)] == [3, 2]
    assert script.seen[0].query == {"endpoint": ["demo"]}
