"""``jobs/ops/cloud_status.py`` (make cloud-status / cloud-chain) against a fake Dataproc REST API.

The client library is the real one (REST transport); only the service is fake
(``tests/fakes/dataproc_api.py``), and it checks requests the way the service does. The lake is a
real, tiny Delta table of ``ops/quality_batches`` written with ``deltalake`` from the table's schema
in ``lib/schema.py``. No Spark.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from google.api_core import exceptions as api_exceptions

from jobs.ops import cloud_status
from lib.cloud import chain, gcp
from lib.cloud import dataproc_ops as ops
from lib.config import PROJECT_ROOT
from lib.schema import arrow_schema
from tests.fakes import dataproc_api
from tests.fakes.dataproc_api import FakeDataproc

PROJECT, REGION, CLUSTER, BUCKET = "my-shop-dev", "europe-west1", "shop-dev-streaming", "my-shop-dev-artifacts"
SUBNET = f"projects/{PROJECT}/regions/{REGION}/subnetworks/shop-dev"
BATCH_SA = f"shop-dev-batch@{PROJECT}.iam.gserviceaccount.com"
STREAMING_LABELS = {"app": "shop-platform", "env": "dev", "component": "streaming", "version": "v1"}
RELEASE = {"version": "v7-abc", "base": f"gs://{BUCKET}/releases/v7-abc",
           "code_zip": f"gs://{BUCKET}/releases/v7-abc/shop_platform-v7-abc.zip",
           "pydeps": f"gs://{BUCKET}/pydeps/pydeps-cp312-0123456789ab.zip",
           "jars": [f"gs://{BUCKET}/jars/spark/delta-spark_2.13-4.0.0.jar", f"gs://{BUCKET}/jars/gcp/auth.jar"]}
NOW = datetime.now(UTC)  # reset before each test (below): the CLI under test reads the real clock


@pytest.fixture(autouse=True)
def fresh_now():
    """Ages in these tests are relative to the CLI's own clock: take "now" when the test starts, not
    when the module was imported (in the full suite that is many minutes earlier)."""
    global NOW
    NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def no_shop_settings(monkeypatch):
    """Settings come from each test's flags only, never from the developer's shell."""
    for s in gcp.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.delenv("SHOP__LAKE__ROOT", raising=False)


@pytest.fixture
def fake():
    with FakeDataproc(PROJECT, REGION) as api:
        yield api


def write_micro_batches(lake: Path, *ages: timedelta) -> None:
    """One ``ops/quality_batches`` commit per age, batch ids in commit order."""
    for i, age in enumerate(ages):
        row = {"batch_id": i, "load_id": f"app:{i}", "processed_at": NOW - age, "read": 100 + i, "valid": 90,
               "quarantined": 3, "duplicates": 7 + i, "quarantined_by_rule": [("non_positive_price", 3)],
               "min_event_time": NOW - age, "max_event_time": NOW - age}
        write_deltalake(str(lake / "ops" / "quality_batches"),
                        pa.Table.from_pylist([row], schema=arrow_schema("ops/quality_batches")), mode="append")


def nightly_labels(job: str) -> dict[str, str]:
    return {"app": "shop-platform", "env": "dev", "component": "batch", "job": job, "trigger": "nightly"}


def add_night(fake: FakeDataproc, job: str, state: str = "SUCCEEDED", hours_ago: float = 10, message: str = "",
              suffix: int = 2) -> None:
    created = NOW - timedelta(hours=hours_ago)
    fake.add_batch(f"nightly-{job.replace('_', '-')}-{suffix}", state, labels=nightly_labels(job), created=created,
                   ended=created + timedelta(minutes=12, seconds=5), message=message)


def healthy(fake: FakeDataproc, lake: Path) -> None:
    fake.add_job("streaming-old", "CANCELLED", labels=STREAMING_LABELS, cluster=CLUSTER, since=NOW - timedelta(days=3))
    fake.add_job("streaming-new", "RUNNING", labels=STREAMING_LABELS, cluster=CLUSTER, since=NOW - timedelta(hours=5))
    # other environments' and clusters' jobs are not ours
    fake.add_job("streaming-prod", "ERROR", labels={**STREAMING_LABELS, "env": "prod"}, cluster=CLUSTER,
                 since=NOW - timedelta(hours=1))
    fake.add_job("elsewhere", "ERROR", labels=STREAMING_LABELS, cluster="other-cluster", since=NOW)
    write_micro_batches(lake, timedelta(minutes=3), timedelta(seconds=40), timedelta(minutes=1))
    for job in ("gold", "score"):
        add_night(fake, job, hours_ago=34, suffix=1)
        add_night(fake, job)
    add_night(fake, "gold", "FAILED", hours_ago=60, message="old failure", suffix=0)  # history, not latest


def status_args(fake: FakeDataproc, lake: Path, *more: str) -> list[str]:
    return ["status", "--endpoint", fake.url, "--project", PROJECT, "--region", REGION, "--cluster", CLUSTER,
            "--lake-root", str(lake), "--jobs", "gold,score", *more]


def chain_args(fake: FakeDataproc, *more: str) -> list[str]:
    return ["run-chain", "--endpoint", fake.url, "--project", PROJECT, "--region", REGION,
            "--artifacts-bucket", BUCKET, "--subnet", SUBNET, "--service-account", BATCH_SA,
            "--lake-root", "gs://my-shop-dev-lake/lake", "--kafka-bootstrap", "bootstrap.shop.example:9092",
            "--poll-seconds", "0", *more]


def run_file(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The entry point as a program, as make runs it (none of the shell's SHOP_* or RUST_LOG settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP", "RUST_LOG"))}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "jobs" / "ops" / "cloud_status.py"), *argv],
                          capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cloud_status.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# --- the fake is the service's contract, not our code's ----------------------------------------------------------
def test_the_fake_speaks_the_enum_numbers_of_the_dataproc_protos():
    from google.cloud import dataproc_v1 as d

    assert dataproc_api.BATCH_STATES == {s.name: s.value for s in d.Batch.State}
    assert dataproc_api.JOB_STATES == {s.name: s.value for s in d.JobStatus.State}
    assert dataproc_api.JOB_SUBSTATES == {s.name: s.value for s in d.JobStatus.Substate}
    assert dataproc_api.AUTH_TYPES == {s.name: s.value for s in d.AuthenticationConfig.AuthenticationType}
    assert dataproc_api.JOB_STATE_MATCHERS == {s.name: s.value for s in d.ListJobsRequest.JobStateMatcher}


def test_the_fake_refuses_what_the_service_refuses(fake):
    _, batches = gcp.dataproc_clients(gcp.Settings(project=PROJECT, region=REGION, endpoint=fake.url))
    parent = f"projects/{PROJECT}/locations/{REGION}"
    body = {"pyspark_batch": {"main_python_file_uri": "gs://b-1/jobs/batch/run.py"}, "labels": {"job": "gold"}}

    def create(batch_id, batch=body, where=parent):
        return batches.create_batch(request={"parent": where, "batch": batch, "batch_id": batch_id}, timeout=10)

    for bad_id in ("Gold-1", "abc", "-abcd", "abcd-", "a" * 64, "nightly_gold_1"):
        with pytest.raises(api_exceptions.BadRequest, match="Batch ID"):
            create(bad_id)
    create("nightly-gold-1")
    with pytest.raises(api_exceptions.Conflict, match="already exists"):
        create("nightly-gold-1")
    with pytest.raises(api_exceptions.BadRequest, match="Main python file URI is required"):
        create("nightly-gold-2", {"pyspark_batch": {"args": ["--env", "gcp"]}})
    with pytest.raises(api_exceptions.BadRequest, match="gs:// or file://"):
        create("nightly-gold-3", {"pyspark_batch": {"main_python_file_uri": "jobs/batch/run.py"}})
    with pytest.raises(api_exceptions.BadRequest, match="label"):
        create("nightly-gold-4", {**body, "labels": {"Job": "gold"}})
    with pytest.raises(api_exceptions.Forbidden):
        create("nightly-gold-5", where=f"projects/someone-else/locations/{REGION}")
    with pytest.raises(api_exceptions.BadRequest, match="Region 'us-east1'"):
        create("nightly-gold-6", where=f"projects/{PROJECT}/locations/us-east1")
    for bad_filter in ('labels.job = "gold" OR labels.job = "score"', "(state = RUNNING)", "colour = red",
                       "labels.job =", 'create_time > "yesterday"'):
        with pytest.raises(api_exceptions.BadRequest, match="filter"):
            list(batches.list_batches(request={"parent": parent, "filter": bad_filter}, timeout=10))
    with pytest.raises(api_exceptions.BadRequest, match="order_by"):
        list(batches.list_batches(request={"parent": parent, "order_by": "create_time"}, timeout=10))
    assert fake.created == ["nightly-gold-1"]


# --- status ---------------------------------------------------------------------------------------------------------
def test_a_healthy_platform_exits_0_with_the_job_the_last_micro_batch_and_each_nightly_job(fake, tmp_path, capsys):
    healthy(fake, tmp_path)

    rc, out, err = run(status_args(fake, tmp_path), capsys)

    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"shop-platform dev: project {PROJECT}, region {REGION}, ")
    job, micro = lines[lines.index(f"streaming  cluster {CLUSTER}") + 1:][:2]
    assert job.split()[:3] == ["job", "streaming-new", "RUNNING"] and job.endswith("(5h 00m)")
    assert micro.split()[:3] == ["last", "micro-batch", "#1"]
    assert micro.endswith("read 101, valid 90, quarantined 3, duplicates 8")
    table = lines[lines.index(next(x for x in lines if x.startswith("nightly "))) + 1:]
    assert table[0].split() == ["job", "state", "started", "ended", "took", "batch"]
    assert [r.split()[:2] + r.split()[-3:] for r in table[1:3]] == [
        ["gold", "SUCCEEDED", "11m", "05s", "nightly-gold-2"], ["score", "SUCCEEDED", "11m", "05s", "nightly-score-2"]]
    assert lines[-1] == "OK"


def test_json_is_one_object_with_the_same_findings(fake, tmp_path, capsys):
    healthy(fake, tmp_path)

    rc, out, _ = run(status_args(fake, tmp_path, "--json"), capsys)

    doc = json.loads(out)
    assert rc == 0 and doc["ok"] is True and doc["problems"] == []
    assert doc["streaming"]["job"]["job_id"] == "streaming-new"
    assert doc["streaming"]["micro_batch"]["batch_id"] == 1
    assert [(r["job"], r["latest"]["batch_id"], r["latest"]["state"]) for r in doc["nightly"]] == [
        ("gold", "nightly-gold-2", "SUCCEEDED"), ("score", "nightly-score-2", "SUCCEEDED")]


@pytest.mark.parametrize("state, details, reason", [
    ("ERROR", "Job failed: driver exited with code 1", "streaming: job streaming-new is ERROR (not RUNNING) since"),
    ("SETUP_DONE", "", "streaming: job streaming-new is SETUP_DONE (not RUNNING) since"),
])
def test_a_streaming_job_that_is_not_running_is_unhealthy(fake, tmp_path, capsys, state, details, reason):
    fake.add_job("streaming-new", state, labels=STREAMING_LABELS, cluster=CLUSTER, since=NOW - timedelta(minutes=7),
                 details=details)
    write_micro_batches(tmp_path, timedelta(seconds=5))
    add_night(fake, "gold")
    add_night(fake, "score")

    rc, out, _ = run(status_args(fake, tmp_path), capsys)

    problems = [x for x in out.splitlines() if x.startswith("  - ")]
    assert rc == 1 and len(problems) == 1 and out.splitlines()[-2] == "UNHEALTHY: 1 problem(s)"
    assert problems[0].startswith(f"  - {reason}")
    assert problems[0].endswith(f": {details}") if details else ": " not in problems[0].split(" since ")[1]


def test_no_streaming_job_or_two_at_once_are_unhealthy(fake, tmp_path, capsys):
    write_micro_batches(tmp_path, timedelta(seconds=5))
    add_night(fake, "gold")
    add_night(fake, "score")

    rc, out, _ = run(status_args(fake, tmp_path), capsys)
    assert rc == 1 and f"  - streaming: no streaming job (env=dev) on cluster {CLUSTER}" in out

    for job_id in ("streaming-a", "streaming-b"):
        fake.add_job(job_id, "RUNNING", labels=STREAMING_LABELS, cluster=CLUSTER, since=NOW - timedelta(hours=1))
    rc, out, _ = run(status_args(fake, tmp_path), capsys)
    assert rc == 1 and "  - streaming: 2 streaming jobs are active" in out and "share one checkpoint" in out


def test_a_last_micro_batch_older_than_the_limit_is_unhealthy(fake, tmp_path, capsys):
    healthy(fake, tmp_path / "unused")
    stale = tmp_path / "lake"
    write_micro_batches(stale, timedelta(minutes=25), timedelta(minutes=12))

    rc, out, _ = run(status_args(fake, stale), capsys)
    [problem] = [x for x in out.splitlines() if x.startswith("  - ")]
    assert rc == 1 and re.fullmatch(r"  - streaming: last micro-batch #1 at [0-9: -]{19} is 12m( 0\ds)? old "
                                    r"\(limit 10m\)", problem)

    rc, out, _ = run(status_args(fake, stale, "--max-batch-age", "15m"), capsys)
    assert rc == 0 and out.splitlines()[-1] == "OK"

    rc, out, _ = run(status_args(fake, tmp_path / "empty"), capsys)
    assert rc == 1 and "has no micro-batch yet" in out


def test_a_job_that_just_started_running_gets_the_limit_to_write_its_first_micro_batch(fake, tmp_path, capsys):
    fake.add_job("streaming-new", "RUNNING", labels=STREAMING_LABELS, cluster=CLUSTER, since=NOW - timedelta(minutes=2))
    write_micro_batches(tmp_path, timedelta(hours=9))  # before the restart
    add_night(fake, "gold")

    rc, out, _ = run(status_args(fake, tmp_path, "--jobs", "gold"), capsys)

    assert rc == 0 and out.splitlines()[-1] == "OK" and "(9h 00m ago; limit 10m)" in out


def test_an_unreadable_ops_table_is_a_one_line_problem(fake, tmp_path):
    healthy(fake, tmp_path / "unused")
    log = tmp_path / "lake" / "ops" / "quality_batches" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("{not json\n")

    done = run_file(status_args(fake, tmp_path / "lake"), tmp_path)  # deltalake's own logging is per process

    [problem] = [x for x in done.stdout.splitlines() if x.startswith("  - ")]
    assert done.returncode == 1 and done.stderr == ""  # no Rust warnings either
    assert problem.startswith(f"  - streaming: cannot read {tmp_path}/lake/ops/quality_batches: ")
    assert "  last micro-batch  unreadable: " in done.stdout


def test_the_newest_micro_batch_is_found_whichever_file_holds_it(tmp_path):
    write_micro_batches(tmp_path, timedelta(seconds=10), timedelta(minutes=30), timedelta(minutes=20))

    mb = ops.last_micro_batch(str(tmp_path / "ops" / "quality_batches"))

    assert (mb.batch_id, mb.read, mb.duplicates) == (0, 100, 7)
    assert abs((mb.processed_at - (NOW - timedelta(seconds=10))).total_seconds()) < 0.001
    assert ops.last_micro_batch(str(tmp_path / "nothing")) is None


def test_a_nightly_job_whose_latest_batch_failed_is_unhealthy_and_named(fake, tmp_path, capsys):
    healthy(fake, tmp_path)
    add_night(fake, "score", "FAILED", hours_ago=2, message="Job failed with message [NoChampion: no model]", suffix=3)

    rc, out, _ = run(status_args(fake, tmp_path), capsys)

    lines = out.splitlines()
    [problem] = [x for x in lines if x.startswith("  - ")]
    assert rc == 1
    assert problem.startswith("  - nightly score: FAILED at ") and problem.endswith(
        "(nightly-score-3): Job failed with message [NoChampion: no model]")
    row = next(i for i, x in enumerate(lines) if x.startswith("  score "))
    assert lines[row].split()[:2] == ["score", "FAILED"] and lines[row + 1] == (
        "    -> Job failed with message [NoChampion: no model]")


def test_a_running_nightly_batch_is_judged_by_the_one_before_and_an_old_success_is_not_enough(fake, tmp_path, capsys):
    healthy(fake, tmp_path)
    fake.add_batch("nightly-gold-9", "RUNNING", labels=nightly_labels("gold"), created=NOW - timedelta(minutes=5))

    rc, out, _ = run(status_args(fake, tmp_path), capsys)
    lines = out.splitlines()
    row = next(i for i, x in enumerate(lines) if x.startswith("  gold "))
    assert rc == 0 and lines[row].split()[:2] == ["gold", "RUNNING"]
    assert lines[row + 1].startswith("    -> before: SUCCEEDED at ") and lines[row + 1].endswith("(nightly-gold-2)")

    rc, out, _ = run(status_args(fake, tmp_path, "--max-nightly-age", "8h"), capsys)
    problems = [x for x in out.splitlines() if x.startswith("  - ")]
    assert rc == 1 and [p.split(":")[0] for p in problems] == ["  - nightly gold", "  - nightly score"]
    assert problems[1].endswith("old (limit 8h 00m)") and "last success" in problems[1]

    rc, out, _ = run(status_args(fake, tmp_path, "--jobs", "gold,maintain"), capsys)
    assert rc == 1 and "  - nightly maintain: no nightly batch yet" in out


def test_the_status_command_is_the_default_and_runs_as_a_file(fake, tmp_path):
    healthy(fake, tmp_path)
    args = [a for a in status_args(fake, tmp_path) if a != "status"]

    done = run_file(args, tmp_path)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == "OK" and "streaming-new  RUNNING" in done.stdout


# --- run-chain ------------------------------------------------------------------------------------------------------
def expected_body(job: str) -> dict:
    props = {f"spark.{side}.{k}": v for side in ("dataproc.driverEnv", "executorEnv") for k, v in {
        "SHOP__LAKE__ROOT": "gs://my-shop-dev-lake/lake", "SHOP__KAFKA__BOOTSTRAP_SERVERS": "bootstrap.shop.example:9092",
        "PYTHONPATH": "./pydeps"}.items()}
    return {
        "labels": {**nightly_labels(job), "runner": "cli"},
        "pysparkBatch": {"mainPythonFileUri": f"{RELEASE['base']}/jobs/batch/run.py", "args": [job, "--env", "gcp"],
                         "pythonFileUris": [RELEASE["code_zip"]], "jarFileUris": RELEASE["jars"],
                         "archiveUris": [RELEASE["pydeps"] + "#pydeps"]},
        "runtimeConfig": {"version": "3.0", "properties": props},
        "environmentConfig": {"executionConfig": {
            "serviceAccount": BATCH_SA, "subnetworkUri": SUBNET, "ttl": "7200s",
            "authenticationConfig": {"userWorkloadAuthenticationType": "SERVICE_ACCOUNT"}}},
    }


def test_run_chain_creates_one_valid_batch_per_job_in_order_and_stops_at_the_first_failure(fake, tmp_path):
    fake.objects[f"{BUCKET}/releases/CURRENT.json"] = json.dumps(RELEASE).encode()
    fake.plan("gold", "PENDING", "RUNNING", "RUNNING", "SUCCEEDED")
    fake.plan("train_clv", "RUNNING", ("FAILED", "Job failed with message [InsufficientData: 12 customers]"))

    done = run_file(chain_args(fake, "--jobs", "gold,train_demand,train_clv,score"), tmp_path)

    assert done.returncode == 1
    assert done.stderr == ("cloud-status: train_clv: batch " + fake.created[2]
                           + " FAILED: Job failed with message [InsufficientData: 12 customers]\n")
    assert [b.rsplit("-", 1)[0] for b in fake.created] == ["nightly-gold", "nightly-train-demand", "nightly-train-clv"]
    assert all(dataproc_api.BATCH_ID.match(b) and b.rsplit("-", 1)[1].isdigit() for b in fake.created)
    for batch_id, job in zip(fake.created, ("gold", "train_demand", "train_clv"), strict=True):
        stored = fake.batches[batch_id]
        assert {k: stored[k] for k in expected_body(job)} == expected_body(job)
    progress = done.stdout.splitlines()
    assert progress[0] == "nightly chain gold -> train_demand -> train_clv -> score: release v7-abc, " \
                          f"{PROJECT}/{REGION}"
    assert progress[1:4] == [f"[1/4] gold: created {fake.created[0]}", "[1/4] gold: PENDING", "[1/4] gold: RUNNING"]
    assert progress[4].startswith("[1/4] gold: SUCCEEDED after ")
    assert progress[-2].startswith("[3/4] train_clv: FAILED after ") and progress[-2].endswith("12 customers]")
    assert progress[-1] == "chain stopped at train_clv; not run: score"


def test_run_chain_json_reports_each_step(fake, tmp_path, capsys):
    release = tmp_path / "release.json"
    release.write_text(json.dumps(RELEASE))

    rc, out, err = run(chain_args(fake, "--jobs", "gold,maintain", "--release", str(release), "--json", "--ttl", "90m"),
                       capsys)

    doc = json.loads(out)
    assert rc == 0 and doc["ok"] is True and doc["release"] == "v7-abc" and doc["not_run"] == []
    assert [(s["job"], s["state"]) for s in doc["steps"]] == [("gold", "SUCCEEDED"), ("maintain", "SUCCEEDED")]
    assert "[2/2] maintain: SUCCEEDED" in err and err.rstrip().endswith("chain done")
    assert fake.batches[fake.created[0]]["environmentConfig"]["executionConfig"]["ttl"] == "5400s"


def test_run_chain_reports_a_batch_it_cannot_create_in_one_line(fake):
    release = chain.parse_release(json.dumps(RELEASE), "test")
    spec = chain.BatchSpec(PROJECT, REGION, "dev", release, "3.0", {}, BATCH_SA, SUBNET, timedelta(hours=2))
    _, batches = gcp.dataproc_clients(gcp.Settings(project=PROJECT, region=REGION, endpoint=fake.url))
    fake.add_batch("nightly-gold-1700000000", "SUCCEEDED", labels=nightly_labels("gold"), created=NOW)
    lines: list[str] = []

    result = chain.run_chain(batches, spec, ["gold", "score"], out=lines.append, poll_seconds=0,
                           clock=lambda: 1_700_000_000)

    assert not result.ok and result.not_run == ["gold", "score"] and fake.created == []
    assert result.reason == ("gold: cannot create batch nightly-gold-1700000000: 409 ALREADY_EXISTS: Batch "
                             f"projects/{PROJECT}/locations/{REGION}/batches/nightly-gold-1700000000 already exists")


def test_a_batch_that_outlives_its_ttl_or_an_interrupt_stops_the_chain_and_says_what_still_runs(fake):
    spec = chain.BatchSpec(PROJECT, REGION, "dev", chain.parse_release(json.dumps(RELEASE), "test"), "3.0", {},
                           BATCH_SA, SUBNET, timedelta(hours=2))
    _, batches = gcp.dataproc_clients(gcp.Settings(project=PROJECT, region=REGION, endpoint=fake.url))
    fake.plan("gold", *["RUNNING"] * 5)
    ticks = iter(range(1_700_000_000, 1_800_000_000, 3600))  # an hour passes between two looks
    lines: list[str] = []

    result = chain.run_chain(batches, spec, ["gold", "score"], out=lines.append, poll_seconds=0,
                             clock=lambda: next(ticks))

    assert not result.ok and result.not_run == ["score"] and [s.state for s in result.steps] == ["TIMEOUT"]
    assert result.reason == f"gold: batch {fake.created[0]} TIMEOUT: still RUNNING after 3h 00m (ttl + 10 min)"

    def interrupt(_seconds):
        raise KeyboardInterrupt

    result = chain.run_chain(batches, spec, ["score", "maintain"], out=lines.append, poll_seconds=0, sleep=interrupt)

    assert result.interrupted and result.not_run == ["maintain"]
    assert result.reason == (f"interrupted: batch {fake.created[1]} keeps running (gcloud dataproc batches cancel "
                             f"{fake.created[1]} --region={REGION})")


def test_no_wait_creates_the_batch_and_returns(fake, tmp_path, capsys):
    release = tmp_path / "release.json"
    release.write_text(json.dumps(RELEASE))

    rc, out, _ = run(chain_args(fake, "--jobs", "score", "--release", str(release), "--no-wait"), capsys)

    assert rc == 0 and out.splitlines()[-1] == "batch created"
    assert fake.batches[fake.created[0]]["state"] == "PENDING"
    assert not any(m == "GET" and "/batches/" in p for m, p in fake.requests)


def test_a_missing_release_manifest_stops_before_any_batch(fake, capsys):
    rc, out, err = run(chain_args(fake, "--jobs", "gold"), capsys)

    assert rc == 1 and fake.created == []
    assert err == (f"cloud-status: no release manifest at gs://{BUCKET}/releases/CURRENT.json "
                   "(publish one: make submit-streaming)\n")


# --- settings and mistakes ------------------------------------------------------------------------------------------
def fake_terraform(tmp_path: Path, outputs: dict) -> str:
    """A ``terraform`` on PATH that answers ``output -json`` like the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    doc = {k: {"sensitive": False, "type": "string", "value": v} for k, v in outputs.items()}
    script = bin_dir / "terraform"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(doc)}\nEOF\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_from_terraform_fills_what_flags_and_environment_leave_open(fake, tmp_path, capsys, monkeypatch):
    healthy(fake, tmp_path / "lake")
    monkeypatch.setenv("PATH", fake_terraform(tmp_path, {
        "project_id": PROJECT, "region": "us-central1", "env": "dev", "dataproc_cluster": CLUSTER,
        "lake_root": str(tmp_path / "lake"), "secret_env": {"A": "b"}}))
    monkeypatch.setenv("SHOP_REGION", REGION)  # the environment wins over Terraform, as in submit.sh

    rc, out, _ = run(["--from-terraform", "--endpoint", fake.url, "--jobs", "gold"], capsys)
    assert rc == 0 and out.splitlines()[-1] == "OK"

    rc, _, err = run(["--from-terraform", "--endpoint", fake.url, "--deploy-env", "prod"], capsys)
    assert rc == 2 and err == ("cloud-status: Terraform's state is environment 'dev' but 'prod' was asked for "
                               "(run make infra-init TF_ENV=prod first)\n")


@pytest.mark.parametrize("argv, message", [
    (["--region", REGION, "--cluster", CLUSTER, "--lake-root", "/tmp/lake"],
     "no project: pass --project or set SHOP_PROJECT (or use --from-terraform)"),
    (["--project", PROJECT, "--region", "europe-west1-b", "--cluster", CLUSTER, "--lake-root", "/tmp/lake"],
     "invalid region 'europe-west1-b' (expected a region such as europe-west1, not a zone)"),
    (["--project", PROJECT, "--region", REGION, "--cluster", CLUSTER],
     "the lake root 'gs://<lake-bucket>/lake' of config 'gcp' is a placeholder: pass --lake-root, set "
     "SHOP_LAKE_ROOT or use --from-terraform"),
    (["--project", PROJECT, "--region", REGION, "--cluster", CLUSTER, "--lake-root", "/tmp/lake", "--jobs", "gold,nope"],
     "no batch job nope: the stages are backfill,gold,train_demand,train_clv,score,retarget_uplift,maintain"),
    (["--project", PROJECT, "--region", REGION, "--cluster", CLUSTER, "--lake-root", "/tmp/lake", "--jobs", "Gold"],
     "invalid job name 'Gold': lowercase letters, digits and '_' (a stage of conf/batch_chain.yaml)"),
    (["--project", PROJECT, "--region", REGION, "--cluster", CLUSTER, "--lake-root", "/tmp/lake",
      "--max-batch-age", "ten"], "invalid duration 'ten' (e.g. 90m, 2h)"),
    (["--lake-root", "/tmp/lake", "--endpoint", "127.0.0.1:8080"],
     "invalid endpoint '127.0.0.1:8080' (expected a URL such as http://127.0.0.1:8080)"),
    (["--colour"], "unrecognized arguments: --colour"),
    (["--from-terraform", "--lake-root", "/tmp/lake"], "--from-terraform needs terraform on PATH"),
    (["run-chain", "--project", PROJECT, "--region", REGION, "--subnet", SUBNET, "--service-account", BATCH_SA,
      "--lake-root", "gs://l-1/lake", "--jobs", "gold,score", "--no-wait"],
     "--no-wait runs one job (--jobs NAME): the next job of a chain starts when the previous one has succeeded"),
    (["run-chain", "--project", PROJECT, "--region", REGION, "--subnet", SUBNET, "--service-account", BATCH_SA,
      "--lake-root", "gs://l-1/lake", "--jobs", "gold", "--ttl", "5m"],
     "--ttl 5m must be between 10m and 14d (the Serverless limits)"),
    (["run-chain", "--project", PROJECT, "--region", REGION, "--subnet", SUBNET, "--service-account", BATCH_SA,
      "--lake-root", "/tmp/lake", "--jobs", "gold"], "the batches need a gs:// lake root, got '/tmp/lake'"),
    (["run-chain", "--project", PROJECT, "--region", REGION, "--subnet", SUBNET, "--lake-root", "gs://l-1/lake"],
     "no service account: pass --service-account or set SHOP_BATCH_SA (or use --from-terraform)"),
])
def test_a_setting_or_flag_mistake_is_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no terraform; and nothing here may reach a network

    rc, out, err = run(argv, capsys)

    assert (rc, out, err) == (2, "", f"cloud-status: {message}\n")


def test_an_unreachable_api_is_one_line_and_exit_1(tmp_path, capsys):
    rc, out, err = run(["--endpoint", "http://127.0.0.1:9", "--project", PROJECT, "--region", REGION,
                        "--cluster", CLUSTER, "--lake-root", str(tmp_path), "--jobs", "gold"], capsys)

    assert rc == 1 and out == "" and err.startswith("cloud-status: cannot reach the API: ConnectionError")
    assert err.count("\n") == 1


def test_the_default_jobs_are_the_nightly_chain():
    from lib.batch import chain

    assert ops.default_jobs() == list(chain.NIGHTLY) == ["gold", "train_demand", "train_clv", "score",
                                                         "retarget_uplift", "maintain"]
