"""Is production healthy? The Dataproc API for the jobs, the lake's ops table for the data.

What ``make cloud-status`` checks, each a pure function of client objects (``JobControllerClient``,
``BatchControllerClient`` of ``google-cloud-dataproc``) so tests hand in clients built on a fake API:

* :func:`streaming_status` — the streaming job on the cluster (labels ``app=shop-platform``,
  ``env=<env>``, ``component=streaming``, as ``scripts/submit.sh streaming`` submits it) must be the
  one active job there and RUNNING. Dataproc's RUNNING only says the driver is alive, so the lake is
  asked too: the newest row of ``ops/quality_batches`` (one per lakehouse micro-batch) must be
  younger than a threshold (unless the job itself entered RUNNING less than that ago). A shop with
  no traffic at all writes no micro-batches either; the threshold (``--max-batch-age``) is the
  knob for that.
* :func:`nightly_status` — for each job of the nightly chain, its recent Serverless batches (labels
  ``component=batch``, ``job=<name>``, ``trigger=nightly``, as the Workflows chain creates them). A
  batch still running does not decide: the job is healthy when its latest *finished* batch
  SUCCEEDED within the last ``max_age`` (26 h: one nightly run plus slack).
* :func:`health` — the two together: ``(ok, problems)``, one line per problem.

Running the chain by hand is :mod:`lib.cloud.chain`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc
from google.api_core import exceptions as ex
from google.api_core import retry

from lib.config import batch_chain_order
from lib.delta_io import TableUnreadable, add_actions, one_line
from lib.delta_io import open_table_or_none as open_table

# google.* stays inside the functions that call the APIs: google-cloud-dataproc is optional (requirements/dev.txt,
# not on Dataproc or in the dashboard image); settings, job lists and batch bodies work without it.

APP_LABEL = "shop-platform"
TERMINAL_BATCH_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
ACTIVE_JOB_STATES = frozenset({"PENDING", "SETUP_DONE", "RUNNING", "CANCEL_PENDING", "CANCEL_STARTED",
                               "ATTEMPT_FAILURE"})
MICRO_BATCH_COLUMNS = ("batch_id", "processed_at", "read", "valid", "quarantined", "duplicates")
CALL_TIMEOUT = 60.0  # seconds per API call; the batch methods have no default timeout at all


def api_retry() -> Any:
    """Retry transient API errors for a couple of minutes (the batch methods have no default retry)."""
    return retry.Retry(initial=1.0, maximum=10.0, multiplier=2.0, timeout=120.0,
                       predicate=retry.if_exception_type(ex.ServiceUnavailable, ex.InternalServerError,
                                                         ex.TooManyRequests, ex.DeadlineExceeded))


def default_jobs() -> list[str]:
    """The nightly chain: the ``nightly`` list of conf/batch_chain.yaml (what Terraform's chain runs)."""
    return [str(j) for j in batch_chain_order()["nightly"]]


@overload
def _utc(ts: datetime) -> datetime: ...


@overload
def _utc(ts: None) -> None: ...


def _utc(ts: datetime | None) -> datetime | None:
    """A plain aware UTC datetime (proto-plus hands out ``DatetimeWithNanoseconds``)."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return datetime.fromtimestamp(ts.timestamp(), tz=UTC)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" if s % 60 == 0 else f"{s // 60}m {s % 60:02d}s"
    if s < 2 * 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_time(ts: datetime | None, seconds: bool = False) -> str:
    return "-" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# --- streaming ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MicroBatch:
    """The newest row of ``ops/quality_batches``."""

    batch_id: int
    processed_at: datetime
    read: int
    valid: int
    quarantined: int
    duplicates: int


@dataclass(frozen=True)
class StreamingJob:
    job_id: str
    state: str
    details: str
    since: datetime | None  # entered its current state
    submitted: datetime | None


@dataclass(frozen=True)
class StreamingStatus:
    cluster: str
    job: StreamingJob | None  # the active one, else the most recently submitted one
    other_active: list[str]  # ids of further active streaming jobs (there must be none)
    table: str  # <lake root>/ops/quality_batches
    micro_batch: MicroBatch | None
    lake_error: str | None
    problems: list[str] = field(default_factory=list)


def last_micro_batch(table: str) -> MicroBatch | None:
    """The newest row of the ops table (None: no table or no row yet). Only the files whose
    ``processed_at`` statistics reach the newest value are read (the table gets a row every couple of
    seconds, so reading it whole would grow without bound)."""
    dt = open_table(table)
    if dt is None:
        return None
    adds = add_actions(dt)
    if adds.num_rows == 0:
        return None
    dataset = dt.to_pyarrow_dataset()
    where = None
    stat = "max.processed_at"
    if stat in adds.column_names and adds.column(stat).null_count == 0:
        newest = pc.max(adds.column(stat)).as_py()
        if isinstance(newest, datetime):
            # statistics are milliseconds (truncated); a second of slack keeps the newest row in
            kind = dataset.schema.field("processed_at").type
            where = pc.field("processed_at") >= pa.scalar(newest - timedelta(seconds=1), kind)
    rows = dataset.to_table(columns=list(MICRO_BATCH_COLUMNS), filter=where).to_pylist()
    rows = [r for r in rows if r["processed_at"] is not None]
    if not rows:
        return None
    row = max(rows, key=lambda r: _utc(r["processed_at"]))
    return MicroBatch(batch_id=int(row["batch_id"]), processed_at=_utc(row["processed_at"]),
                      **{k: int(row[k] or 0) for k in ("read", "valid", "quarantined", "duplicates")})


def _streaming_job(job: Any) -> StreamingJob:
    status = job.status
    times = [_utc(h.state_start_time) for h in job.status_history if h.state_start_time is not None]
    since = _utc(status.state_start_time)
    return StreamingJob(job_id=job.reference.job_id, state=status.state.name, details=" ".join(status.details.split()),
                        since=since, submitted=min(times) if times else since)


def _list_streaming_jobs(client: Any, project: str, region: str, cluster: str, deploy_env: str,
                         active: bool) -> list[StreamingJob]:
    # Server side: state and component only (jobs.list filters are plain "field = value" terms and
    # the other label values contain '-'); app and env are checked here.
    pager = client.list_jobs(request={
        "project_id": project, "region": region, "cluster_name": cluster,
        "filter": f"status.state = {'ACTIVE' if active else 'NON_ACTIVE'} AND labels.component = streaming",
    }, retry=api_retry(), timeout=CALL_TIMEOUT)
    return [_streaming_job(j) for j in pager
            if j.labels.get("app") == APP_LABEL and j.labels.get("env") == deploy_env]


def streaming_status(client: Any, *, project: str, region: str, cluster: str, deploy_env: str, lake_root: str,
                     max_batch_age: timedelta, now: datetime) -> StreamingStatus:
    """The streaming job on ``cluster`` and the lakehouse's last micro-batch, with the problems found."""
    # deferred: deltalake reads RUST_LOG when first imported; cloud-status sets it in main() (lib/delta_io.py)
    from deltalake.exceptions import DeltaError

    active = _list_streaming_jobs(client, project, region, cluster, deploy_env, active=True)
    active.sort(key=lambda j: j.submitted or now, reverse=True)
    job: StreamingJob | None
    if active:
        job, others = active[0], [j.job_id for j in active[1:]]
    else:
        finished = _list_streaming_jobs(client, project, region, cluster, deploy_env, active=False)
        job = max(finished, key=lambda j: j.submitted or now, default=None)
        others = []

    table = f"{lake_root.rstrip('/')}/ops/quality_batches"
    micro, lake_error = None, None
    try:
        micro = last_micro_batch(table)
    except (TableUnreadable, OSError, pa.ArrowException, DeltaError) as exc:
        lake_error = one_line(exc)

    problems = []
    if job is None:
        problems.append(f"streaming: no streaming job (env={deploy_env}) on cluster {cluster}; start one with "
                        "make submit-streaming")
    elif job.state != "RUNNING":
        detail = f": {job.details}" if job.details else ""
        problems.append(f"streaming: job {job.job_id} is {job.state} (not RUNNING) since {fmt_time(job.since)}"
                        f"{detail}")
    if others and job is not None:  # others are set only beside an active job
        problems.append(f"streaming: {len(others) + 1} streaming jobs are active ({job.job_id}, {', '.join(others)}); "
                        "they share one checkpoint, stop all but one")
    if job is not None and job.state == "RUNNING":
        # a job that entered RUNNING less than the limit ago may not have finished a micro-batch yet
        settled = job.since is None or now - job.since > max_batch_age
        if lake_error:
            problems.append(f"streaming: cannot read {table}: {lake_error}")
        elif settled and micro is None:
            problems.append(f"streaming: job {job.job_id} is RUNNING but {table} has no micro-batch yet")
        elif settled and micro is not None and now - micro.processed_at > max_batch_age:
            problems.append(f"streaming: last micro-batch #{micro.batch_id} at {fmt_time(micro.processed_at, True)} "
                            f"is {fmt_duration((now - micro.processed_at).total_seconds())} old "
                            f"(limit {fmt_duration(max_batch_age.total_seconds())})")
    return StreamingStatus(cluster=cluster, job=job, other_active=others, table=table, micro_batch=micro,
                           lake_error=lake_error, problems=problems)


# --- nightly batches -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    state: str
    created: datetime | None
    started: datetime | None  # entered RUNNING
    ended: datetime | None  # entered its terminal state
    message: str
    output_uri: str

    def seconds(self, now: datetime) -> float | None:
        start = self.started or self.created
        return None if start is None else ((self.ended or now) - start).total_seconds()


@dataclass(frozen=True)
class NightlyRun:
    job: str
    latest: BatchInfo | None  # the most recently created batch
    finished: BatchInfo | None  # the most recent one that ended (the one health is judged on)
    problem: str | None


def batch_info(batch: Any) -> BatchInfo:
    state = batch.state.name
    started = next((_utc(h.state_start_time) for h in batch.state_history if h.state.name == "RUNNING"), None)
    if started is None and state == "RUNNING":
        started = _utc(batch.state_time)
    return BatchInfo(batch_id=batch.name.rsplit("/", 1)[-1], state=state, created=_utc(batch.create_time),
                     started=started, ended=_utc(batch.state_time) if state in TERMINAL_BATCH_STATES else None,
                     message=" ".join(batch.state_message.split()), output_uri=batch.runtime_info.output_uri)


def nightly_filter(deploy_env: str, job: str) -> str:
    return (f'labels.app = "{APP_LABEL}" AND labels.env = "{deploy_env}" AND labels.component = "batch" '
            f'AND labels.job = "{job}" AND labels.trigger = "nightly"')


def nightly_status(client: Any, *, project: str, region: str, deploy_env: str, jobs: Sequence[str],
                   max_age: timedelta, now: datetime, history: int = 10) -> list[NightlyRun]:
    """Per job of the chain: its latest nightly batch and the latest finished one, judged."""
    runs = []
    for job in jobs:
        pager = client.list_batches(request={
            "parent": f"projects/{project}/locations/{region}", "filter": nightly_filter(deploy_env, job),
            "order_by": "create_time desc", "page_size": history,
        }, retry=api_retry(), timeout=CALL_TIMEOUT)
        recent = [batch_info(b) for b in islice(pager, history)]
        latest = recent[0] if recent else None
        finished = next((b for b in recent if b.state in TERMINAL_BATCH_STATES), None)
        if latest is None:
            problem = f"nightly {job}: no nightly batch yet"
        elif finished is None:
            problem = f"nightly {job}: no finished nightly batch yet ({latest.batch_id} is {latest.state})"
        elif finished.state != "SUCCEEDED":
            reason = f": {finished.message[:300]}" if finished.message else ""
            problem = f"nightly {job}: {finished.state} at {fmt_time(finished.ended)} ({finished.batch_id}){reason}"
        elif finished.ended is None or now - finished.ended > max_age:
            age = fmt_duration((now - finished.ended).total_seconds()) if finished.ended else "?"
            problem = (f"nightly {job}: last success {fmt_time(finished.ended)} is {age} old "
                       f"(limit {fmt_duration(max_age.total_seconds())})")
        else:
            problem = None
        runs.append(NightlyRun(job=job, latest=latest, finished=finished, problem=problem))
    return runs


# --- health and its presentation --------------------------------------------------------------------------------
def health(streaming: StreamingStatus | None, nightly: Iterable[NightlyRun]) -> tuple[bool, list[str]]:
    """``(ok, problems)``: ok when neither part found a problem."""
    problems = list(streaming.problems if streaming else [])
    problems += [r.problem for r in nightly if r.problem]
    return not problems, problems


def _columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip() for r in rows]


def render(streaming: StreamingStatus | None, nightly: list[NightlyRun], *, now: datetime, max_batch_age: timedelta,
           max_age: timedelta) -> list[str]:
    """The readable report (times in UTC), ending with OK or the problems."""
    lines = []
    if streaming is not None:
        lines.append(f"streaming  cluster {streaming.cluster}")
        job = streaming.job
        if job is None:
            lines.append("  job               none")
        else:
            when = "since" if job.state in ACTIVE_JOB_STATES else "at"
            age = f" ({fmt_duration((now - job.since).total_seconds())})" if job.since else ""
            lines.append(f"  job               {job.job_id}  {job.state} {when} {fmt_time(job.since, True)}{age}")
        mb = streaming.micro_batch
        if streaming.lake_error:
            lines.append(f"  last micro-batch  unreadable: {streaming.lake_error}")
        elif mb is None:
            lines.append(f"  last micro-batch  none in {streaming.table}")
        else:
            lines.append(f"  last micro-batch  #{mb.batch_id} at {fmt_time(mb.processed_at, True)} "
                         f"({fmt_duration((now - mb.processed_at).total_seconds())} ago; limit "
                         f"{fmt_duration(max_batch_age.total_seconds())}): read {mb.read:,}, valid {mb.valid:,}, "
                         f"quarantined {mb.quarantined:,}, duplicates {mb.duplicates:,}")
    if nightly:
        if lines:
            lines.append("")
        lines.append(f"nightly    latest batch of each job (healthy: last finished one SUCCEEDED within "
                     f"{fmt_duration(max_age.total_seconds())})")
        rows = [["job", "state", "started", "ended", "took", "batch"]]
        notes: dict[int, str] = {}
        for run in nightly:
            b = run.latest
            if b is None:
                rows.append([run.job, "-", "-", "-", "-", "no nightly batch yet"])
                continue
            rows.append([run.job, b.state, fmt_time(b.started or b.created), fmt_time(b.ended),
                         fmt_duration(b.seconds(now)), b.batch_id])
            if b.state not in TERMINAL_BATCH_STATES and run.finished is not None:
                f = run.finished
                notes[len(rows) - 1] = f"before: {f.state} at {fmt_time(f.ended)} ({f.batch_id})"
            elif b.state != "SUCCEEDED" and b.message:
                notes[len(rows) - 1] = b.message[:300]
        table = _columns(rows)
        for i, line in enumerate(table):
            lines.append(line)
            if i in notes:
                lines.append(f"    -> {notes[i]}")
    ok, problems = health(streaming, nightly)
    lines.append("")
    lines.append("OK" if ok else f"UNHEALTHY: {len(problems)} problem(s)")
    lines += [f"  - {p}" for p in problems]
    return lines


def to_plain(obj: Any) -> Any:
    """Datetimes as ISO text, tuples as lists: ready for ``json.dumps``."""
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def as_json(streaming: StreamingStatus | None, nightly: list[NightlyRun], *, now: datetime,
            max_batch_age: timedelta, max_age: timedelta, **context: str) -> dict:
    """Everything :func:`render` shows, as one JSON-ready object."""
    ok, problems = health(streaming, nightly)
    return to_plain({
        "ok": ok, "problems": problems, "checked_at": now, **context,
        "limits": {"micro_batch_age_seconds": max_batch_age.total_seconds(),
                   "nightly_age_seconds": max_age.total_seconds()},
        "streaming": asdict(streaming) if streaming else None,
        "nightly": [asdict(r) for r in nightly],
    })


def one_line_api(exc: BaseException) -> str:
    """An API error as one line: ``409 ALREADY_EXISTS: Batch ... already exists`` (without the
    ``POST https://...:`` the REST transport puts in front of the service's message)."""
    code = getattr(exc, "code", None)
    status = getattr(getattr(exc, "grpc_status_code", None), "name", "")
    response: Any = getattr(exc, "response", None)
    try:
        status = response.json()["error"]["status"]
    except (AttributeError, ValueError, KeyError, TypeError):
        pass
    message = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", str(getattr(exc, "message", None) or exc))
    head = " ".join(str(p) for p in (int(code) if code is not None else None, status) if p)
    text = " ".join(message.split())[:300]
    return f"{head}: {text}" if head else one_line(exc)
