"""Static checks of what business users and email recipients reach on Google Cloud (terraform/dashboard.tf,
terraform/bigquery.tf, terraform/scheduler.tf): the tables BigQuery exposes are the ones the code writes,
the unsubscribe link in the deployed config is the unsubscribe service's URL, each service's identity
has only what its role needs, and the nightly chain is the list `make batch` runs."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import yaml

from lib.streaming import log_progress

from .conftest import ROOT, TF_DIR, clean, unquote


def _resource(parsed, rtype: str, name: str) -> dict:
    for doc in parsed.values():
        for block in doc.get("resource", []):
            for t, named in block.items():
                if unquote(t) != rtype:
                    continue
                for n, body in named.items():
                    if unquote(n) == name:
                        return clean(body if isinstance(body, dict) else body[0])
    raise AssertionError(f"no resource {rtype}.{name}")


def _locals(parsed) -> dict:
    out: dict = {}
    for doc in parsed.values():
        for block in doc.get("locals", []):
            out.update(clean(block))
    return out


def _written_gold_tables() -> set[str]:
    """Every gold table named in the code that writes gold (streaming serving, schema, analyst, scores)."""
    names = set()
    for path in [*(ROOT / "lib").rglob("*.py"), *(ROOT / "ml").rglob("*.py")]:
        if "dashboard" in path.parts:  # a reader, not a writer
            continue
        names |= set(re.findall(r"[\"']gold/([a-z_]+)[\"']", path.read_text()))
    return names


def test_biglake_exposes_every_gold_table_by_its_true_name(parsed):
    tables = [unquote(t) for t in _locals(parsed)["gold_tables"]]
    written = _written_gold_tables()
    assert len(tables) == len(set(tables))
    missing = sorted(set(tables) - written)
    assert not missing, f"BigLake would point at tables nothing writes: {missing}"
    forgotten = sorted(written - set(tables))
    assert not forgotten, f"gold tables the code writes but BigQuery does not expose: {forgotten}"
    batch_docs = (ROOT / "docs" / "batch.md").read_text() + (ROOT / "README.md").read_text()
    schema = (ROOT / "lib" / "schema.py").read_text()
    for t in tables:
        assert f"gold/{t}" in schema or t in batch_docs, f"gold/{t} is documented nowhere"


def test_unsubscribe_url_output_is_the_public_service_url(parsed):
    outputs = {unquote(k): clean(v) for doc in parsed.values() for b in doc.get("output", []) for k, v in b.items()}
    value = str(outputs["unsubscribe_url"]["value"])
    assert '"${google_cloud_run_v2_service.unsubscribe[0].uri}/unsubscribe"' in value, value
    gcp = yaml.safe_load((ROOT / "conf" / "gcp.yaml").read_text())
    assert gcp["retarget"]["unsubscribe_url"] is None, "no placeholder link in conf/gcp.yaml"
    submit = (ROOT / "scripts" / "submit.sh").read_text()
    assert "unsubscribe_url) UNSUBSCRIBE_URL=" in submit  # the output reaches the streaming job


def test_unsubscribe_service_is_public_and_can_only_touch_unsubscribes(parsed):
    public = _resource(parsed, "google_cloud_run_v2_service_iam_member", "unsubscribe_public")
    assert unquote(str(public["member"])) == "allUsers" and unquote(str(public["role"])) == "roles/run.invoker"
    svc = _resource(parsed, "google_cloud_run_v2_service", "unsubscribe")
    env = {unquote(e["name"]): unquote(str(e.get("value", ""))) for e in svc["template"][0]["containers"][0]["env"]}
    assert env["DASHBOARD_ROLE"] == "unsubscribe"
    writer = _resource(parsed, "google_storage_bucket_iam_member", "unsubscribe_writer")
    assert "lake/retarget/unsubscribes/" in str(writer["condition"][0]["expression"])
    # the offer-code check reads retarget/offers, nothing else
    reader = _resource(parsed, "google_storage_bucket_iam_member", "unsubscribe_offers_reader")
    assert unquote(str(reader["role"])) == "roles/storage.objectViewer"
    expression = unquote(str(reader["condition"][0]["expression"]))
    assert "lake/retarget/offers/" in expression and "unsubscribes" not in expression
    # the only other grant of that identity: the signing key
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    grants = re.findall(r'local\.sa_member\["unsubscribe"\]', text)
    assert len(grants) == 3, "the unsubscribe identity should hold exactly the two lake-prefix and signing-key grants"


def test_dashboard_is_behind_iap_and_reads_only(parsed):
    svc = _resource(parsed, "google_cloud_run_v2_service", "dashboard")
    assert svc["iap_enabled"] is True
    env = {unquote(e["name"]): unquote(str(e.get("value", ""))) for e in svc["template"][0]["containers"][0]["env"]}
    assert env["DASHBOARD_ROLE"] == "dashboard"
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    grants = [m.group(0) for m in re.finditer(r'resource "[^"]+" "[^"]+" \{[^}]*?local\.sa_member\["dashboard"\]', text, re.S)]
    assert len(grants) == 1 and "roles/storage.objectViewer" in grants[0]
    users = _resource(parsed, "google_iap_web_cloud_run_service_iam_member", "dashboard_users")
    assert unquote(str(users["role"])) == "roles/iap.httpsResourceAccessor"
    assert "allUsers" not in str(users)


def test_nightly_chain_defaults_to_the_list_make_batch_runs():
    chain = yaml.safe_load((ROOT / "conf" / "batch_chain.yaml").read_text())
    locals_tf = (TF_DIR / "locals.tf").read_text()
    assert 'yamldecode(file("${path.module}/../conf/batch_chain.yaml")).nightly' in locals_tf
    assert "retarget_uplift" in chain["nightly"]
    from jobs.batch import run  # the one batch entry point: each stage is its first argument

    assert list(run.DESCRIPTIONS) == chain["stages"]
    assert set(chain["nightly"]) <= set(chain["stages"])
    assert "local.batch_jobs" in (TF_DIR / "scheduler.tf").read_text()


def test_the_stall_alert_counts_the_lines_the_streaming_app_logs_per_micro_batch(parsed):
    """terraform/monitoring.tf's log metric (what `streaming_stalled` watches) must match the line the
    app really logs for each micro-batch: lib.streaming.log_progress's listener through the app's log
    format — not Spark's own INFO line, which the sessions' WARN log level keeps out of the log."""
    metric = _resource(parsed, "google_logging_metric", "streaming_progress")
    terms = re.findall(r'"([^"]+)"', unquote(metric["filter"]).split("streaming_cluster_filter}", 1)[1])
    assert terms, metric["filter"]
    listeners = []
    log_progress(SimpleNamespace(streams=SimpleNamespace(addListener=listeners.append)))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))  # jobs/streaming/app.py's
    logger = logging.getLogger("shop.progress")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        progress = SimpleNamespace(name="sessions", batchId=7, numInputRows=4, stateOperators=[],
                                   durationMs={"triggerExecution": 1200, "addBatch": 900})
        listeners[0].onQueryProgress(SimpleNamespace(progress=progress))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = out.getvalue()
    assert "sessions batch 7" in line
    assert all(term in line for term in terms), (terms, line)
