"""The nightly chain from a workstation: an alternative to Workflows when it is broken or being changed.

:func:`run_chain` creates one Serverless batch per job, in order, with the batch id scheme, labels and
body of ``terraform/workflows/nightly.yaml.tftpl`` (plus the label ``runner=cli``, so both kinds of
run count as the nightly one for ``make cloud-status`` and can still be told apart), from the
release ``scripts/submit.sh --promote`` published (``releases/CURRENT.json``). Each batch is
followed with ``get_batch`` until it ends (the next job reads what the previous one wrote); the
first one that fails, is cancelled, cannot be created or outlives its ttl stops the chain with a
one-line reason. Creation carries a request id, so a retried create never makes a second batch.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from google.api_core.exceptions import GoogleAPICallError
from tenacity import RetryCallState, Retrying, retry_if_result, wait_fixed

from lib.cloud.dataproc_ops import (
    APP_LABEL,
    CALL_TIMEOUT,
    TERMINAL_BATCH_STATES,
    BatchInfo,
    api_retry,
    batch_info,
    fmt_duration,
    one_line_api,
)

# google.api_core comes with google-cloud-secret-manager (base.txt, every image); google-cloud-dataproc itself
# (optional, requirements/dev.txt) is only imported where the client is made (lib/cloud/gcp.py).


class ReleaseError(RuntimeError):
    """The release manifest cannot be read or is incomplete; ``str(err)`` is one line."""


# --- release ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """``releases/CURRENT.json`` as ``scripts/submit.sh --promote`` writes it."""

    version: str
    base: str
    code_zip: str
    pydeps: str
    jars: list[str]


def parse_release(text: str, where: str) -> Release:
    try:
        data = json.loads(text)
    except ValueError:
        raise ReleaseError(f"{where} is not JSON") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{where} is not a JSON object")
    missing = [k for k in ("version", "base", "code_zip", "pydeps", "jars") if not data.get(k)]
    if missing:
        raise ReleaseError(f"{where} lacks {', '.join(missing)} (publish a release: make submit-streaming)")
    uris = [data["base"], data["code_zip"], data["pydeps"], *data["jars"]] if isinstance(data["jars"], list) else []
    if not uris or not all(isinstance(u, str) and u.startswith("gs://") for u in uris):
        raise ReleaseError(f"{where}: base, code_zip, pydeps and jars must be gs:// URIs")
    return Release(version=str(data["version"]), base=data["base"].rstrip("/"), code_zip=data["code_zip"],
                   pydeps=data["pydeps"], jars=list(data["jars"]))


def read_release(uri: str, session: Any = None, storage_url: str = "https://storage.googleapis.com") -> Release:
    """The manifest at a ``gs://`` URI (Cloud Storage JSON API download through ``session``, an
    authorised ``requests`` session) or a local path."""
    if not uri.startswith("gs://"):
        try:
            with open(uri, encoding="utf-8") as fh:
                return parse_release(fh.read(), uri)
        except OSError as exc:
            raise ReleaseError(f"cannot read {uri}: {exc.strerror or exc}") from None
    bucket, _, name = uri[5:].partition("/")
    url = f"{storage_url.rstrip('/')}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
    response = session.get(url, params={"alt": "media"}, timeout=CALL_TIMEOUT)
    if response.status_code == 404:
        raise ReleaseError(f"no release manifest at {uri} (publish one: make submit-streaming)")
    if response.status_code != 200:
        raise ReleaseError(f"reading {uri}: HTTP {response.status_code} {' '.join(response.text.split())[:200]}")
    return parse_release(response.text, uri)


def batch_properties(shop_env: dict[str, str], mlflow_uri: str = "") -> dict[str, str]:
    """Spark properties of every batch, as ``terraform/scheduler.tf`` (``local.batch_properties``) and
    ``scripts/submit.sh batch`` build them: config overrides for driver and executors, the Python
    deps archive on the path, MLflow for the driver."""
    props = {f"spark.dataproc.driverEnv.{k}": v for k, v in shop_env.items() if v}
    props |= {f"spark.executorEnv.{k}": v for k, v in shop_env.items() if v}
    props |= {"spark.dataproc.driverEnv.PYTHONPATH": "./pydeps", "spark.executorEnv.PYTHONPATH": "./pydeps"}
    if mlflow_uri:
        props["spark.dataproc.driverEnv.MLFLOW_TRACKING_URI"] = mlflow_uri
    return props


@dataclass(frozen=True)
class BatchSpec:
    """What every batch of the chain shares."""

    project: str
    region: str
    deploy_env: str
    release: Release
    runtime_version: str
    properties: dict[str, str]
    service_account: str
    subnetwork: str
    ttl: timedelta

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


def batch_id(job: str, unix_seconds: int) -> str:
    """``nightly-<job, '_' -> '-'>-<unix seconds>``, the Workflows chain's scheme."""
    return f"nightly-{job.replace('_', '-')}-{unix_seconds}"


def batch_body(spec: BatchSpec, job: str) -> dict:
    """The batch of one job (``google.cloud.dataproc_v1.Batch`` fields), as the Workflows chain builds it."""
    r = spec.release
    return {
        "labels": {"app": APP_LABEL, "env": spec.deploy_env, "component": "batch", "job": job, "trigger": "nightly",
                   "runner": "cli"},
        "pyspark_batch": {"main_python_file_uri": f"{r.base}/jobs/batch/run.py", "python_file_uris": [r.code_zip],
                          "jar_file_uris": list(r.jars), "archive_uris": [f"{r.pydeps}#pydeps"],
                          "args": [job, "--env", "gcp"]},
        "runtime_config": {"version": spec.runtime_version, "properties": dict(spec.properties)},
        "environment_config": {"execution_config": {
            "service_account": spec.service_account, "subnetwork_uri": spec.subnetwork, "ttl": spec.ttl,
            "authentication_config": {"user_workload_authentication_type": "SERVICE_ACCOUNT"}}},
    }


@dataclass(frozen=True)
class ChainStep:
    job: str
    batch_id: str
    state: str
    seconds: float | None
    message: str = ""


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    steps: list[ChainStep]
    reason: str | None = None  # one line when not ok
    not_run: list[str] = field(default_factory=list)
    interrupted: bool = False


def run_chain(client: Any, spec: BatchSpec, jobs: Sequence[str], *, out: Callable[[str], None] = print,
              poll_seconds: float = 10.0, wait: bool = True, clock: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep) -> ChainResult:
    """Create one batch per job, in order, each after the previous one SUCCEEDED, printing progress
    through ``out``. ``wait=False`` (one job only) returns once the batch is created. Stops at the
    first batch that fails, is cancelled, cannot be created or outlives its ttl (+10 min)."""
    steps: list[ChainStep] = []
    n = len(jobs)
    for i, job in enumerate(jobs, 1):
        tag = f"[{i}/{n}] {job}"
        bid = batch_id(job, int(clock()))
        name = f"{spec.parent}/batches/{bid}"
        rest = list(jobs[i:])
        try:
            client.create_batch(request={"parent": spec.parent, "batch": batch_body(spec, job), "batch_id": bid,
                                         "request_id": uuid.uuid4().hex},
                                retry=api_retry(), timeout=CALL_TIMEOUT)
        except GoogleAPICallError as exc:
            reason = f"{job}: cannot create batch {bid}: {one_line_api(exc)}"
            out(f"{tag}: {reason}")
            return ChainResult(False, steps, reason, [job, *rest])
        out(f"{tag}: created {bid}")
        if not wait:
            steps.append(ChainStep(job, bid, "PENDING", None))
            continue
        try:
            info = _follow(client, name, tag, out, poll_seconds, spec.ttl.total_seconds() + 600, clock, sleep)
        except KeyboardInterrupt:
            reason = (f"interrupted: batch {bid} keeps running (gcloud dataproc batches cancel {bid} "
                      f"--region={spec.region})")
            return ChainResult(False, steps, reason, rest, interrupted=True)
        seconds = info.seconds(datetime.now(UTC)) if info.state != "TIMEOUT" else None
        steps.append(ChainStep(job, bid, info.state, seconds, info.message))
        if info.state != "SUCCEEDED":
            why = f": {info.message[:300]}" if info.message else ""
            reason = f"{job}: batch {bid} {info.state}{why}"
            if rest:
                out(f"chain stopped at {job}; not run: {', '.join(rest)}")
            return ChainResult(False, steps, reason, rest)
    return ChainResult(True, steps)


def _follow(client: Any, name: str, tag: str, out: Callable[[str], None], poll_seconds: float, timeout: float,
            clock: Callable[[], float], sleep: Callable[[float], None]) -> BatchInfo:
    """Poll the batch every ``poll_seconds`` until it ends (tenacity, on the injected ``clock`` and
    ``sleep``); print each new state, and every 5 minutes that it is still going. A batch still running
    ``timeout`` seconds after the first look is given up on (state ``TIMEOUT``)."""
    start = clock()
    seen: dict[str, Any] = {"state": None, "note": start, "now": start}

    def look() -> BatchInfo:
        info = batch_info(client.get_batch(name=name, retry=api_retry(), timeout=CALL_TIMEOUT))
        now = seen["now"] = clock()
        if info.state != seen["state"]:
            seen["state"], seen["note"] = info.state, now
            took = info.seconds(datetime.now(UTC)) if info.state in TERMINAL_BATCH_STATES else None
            out(f"{tag}: {info.state}" + (f" after {fmt_duration(took)}" if took is not None else "")
                + (f": {info.message[:300]}" if info.message and info.state != "SUCCEEDED" else ""))
        elif now - seen["note"] >= 300:
            seen["note"] = now
            out(f"{tag}: still {info.state} ({fmt_duration(now - start)})")
        return info

    def give_up(state: RetryCallState) -> BatchInfo:
        info: BatchInfo = state.outcome.result()  # type: ignore[union-attr]  # set: give_up follows a look
        took = fmt_duration(seen["now"] - start)
        out(f"{tag}: still {info.state} after {took}; giving up on it")
        return BatchInfo(info.batch_id, "TIMEOUT", info.created, info.started, None,
                         f"still {info.state} after {took} (ttl + 10 min)", info.output_uri)

    # an API error or an interrupt (also in ``sleep``) raises at once; only a running batch is looked at again
    return Retrying(retry=retry_if_result(lambda info: info.state not in TERMINAL_BATCH_STATES),
                    stop=lambda _state: seen["now"] - start > timeout, wait=wait_fixed(poll_seconds), sleep=sleep,
                    retry_error_callback=give_up)(look)
