"""A local stand-in for the Dataproc v1 REST API: the calls ``lib/cloud`` makes, checked like the real service.

Dataproc cannot run here, so ``jobs/ops/cloud_status.py`` and :mod:`lib.cloud.dataproc_ops` are
tested against this HTTP server, through the real client library (``google-cloud-dataproc`` with
``transport="rest"``): what is under test is everything down to the JSON on the wire. Served by
:class:`tests.fakes.google_api.GoogleApiFake` (pytest-httpserver), with Google's error format and the checks
every Google API makes.

Implemented (nothing else; other paths answer 404 in Google's error format):

* ``GET  /v1/projects/{project}/regions/{region}/jobs`` (jobs.list: ``clusterName``,
  ``jobStateMatcher``, ``filter``, paging);
* ``GET  /v1/projects/{project}/locations/{location}/batches`` (batches.list: ``filter``,
  ``orderBy``, paging);
* ``GET  /v1/projects/{project}/locations/{location}/batches/{id}`` (batches.get);
* ``POST /v1/projects/{project}/locations/{location}/batches?batchId=`` (batches.create; answers the
  long-running operation, whose polling is not implemented: callers follow the batch with get);
* ``GET  /storage/v1/b/{bucket}/o/{object}?alt=media`` (Cloud Storage JSON API download, for the
  release manifest ``releases/CURRENT.json``; objects are put in :attr:`FakeDataproc.objects`).

It refuses what the real service refuses: another project (403) or region (400) than the one it
serves; unknown query parameters or body fields (400 "Unknown name"); a batch id that is not 4-63
characters of ``[a-z0-9-]`` starting and ending with a letter or digit, an id already used (409
ALREADY_EXISTS), a batch with no or several workload configs, no ``mainPythonFileUri``, URIs that
are not ``gs://``/``file://``, labels that break Google's label rules, a malformed ttl, runtime version
or service account; a filter it cannot parse (400). Its filter language is a strict subset of the
real one: comparisons joined by ``AND`` (no ``OR``, ``NOT`` or parentheses), so code cannot come to
rely on a filter nobody checked.

Enums are answered the way the client asks: names by default, numbers when the request says
``$alt=json;enum-encoding=int`` (the REST transport always does).

Tests script the life of a batch: :meth:`FakeDataproc.plan` queues the states a created batch of a
job goes through, one per ``batches.get`` (default: RUNNING, then SUCCEEDED); :meth:`add_batch` and
:meth:`add_job` seed history. Every request is kept in :attr:`FakeDataproc.requests`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from tests.fakes.google_api import ApiError, GoogleApiFake, check_fields, check_query, invalid, json_body

# Enum numbers of google/cloud/dataproc/v1 (batches.proto, jobs.proto, shared.proto, operations.proto).
BATCH_STATES = {"STATE_UNSPECIFIED": 0, "PENDING": 1, "RUNNING": 2, "CANCELLING": 3, "CANCELLED": 4,
                "SUCCEEDED": 5, "FAILED": 6}
JOB_STATES = {"STATE_UNSPECIFIED": 0, "PENDING": 1, "SETUP_DONE": 8, "RUNNING": 2, "CANCEL_PENDING": 3,
              "CANCEL_STARTED": 7, "CANCELLED": 4, "DONE": 5, "ERROR": 6, "ATTEMPT_FAILURE": 9}
JOB_SUBSTATES = {"UNSPECIFIED": 0, "SUBMITTED": 1, "QUEUED": 2, "STALE_STATUS": 3}
AUTH_TYPES = {"AUTHENTICATION_TYPE_UNSPECIFIED": 0, "SERVICE_ACCOUNT": 1, "END_USER_CREDENTIALS": 2}
JOB_STATE_MATCHERS = {"ALL": 0, "ACTIVE": 1, "NON_ACTIVE": 2}
ACTIVE_JOB_STATES = {"PENDING", "SETUP_DONE", "RUNNING", "CANCEL_PENDING", "CANCEL_STARTED", "ATTEMPT_FAILURE"}
TERMINAL_BATCH_STATES = {"SUCCEEDED", "FAILED", "CANCELLED"}

BATCH_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
RUNTIME_VERSION = re.compile(r"^\d+\.\d+$")
SERVICE_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,29}@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
URI = re.compile(r"^(gs://[a-z0-9][a-z0-9._-]{1,220}/|file:///)\S*$")

# Fields a batch body may carry (JSON names); anything else is "Unknown name" like the real API.
BATCH_FIELDS = {"name", "uuid", "createTime", "pysparkBatch", "sparkBatch", "sparkRBatch", "sparkSqlBatch",
                "pysparkNotebookBatch", "runtimeInfo", "state", "stateMessage", "stateTime", "creator", "labels",
                "runtimeConfig", "environmentConfig", "operation", "stateHistory"}
WORKLOADS = ("pysparkBatch", "sparkBatch", "sparkRBatch", "sparkSqlBatch", "pysparkNotebookBatch")
NESTED_FIELDS = {
    "pysparkBatch": {"mainPythonFileUri", "args", "pythonFileUris", "jarFileUris", "fileUris", "archiveUris"},
    "runtimeConfig": {"version", "containerImage", "properties", "repositoryConfig", "autotuningConfig", "cohort"},
    "environmentConfig": {"executionConfig", "peripheralsConfig"},
    "environmentConfig.executionConfig": {"serviceAccount", "networkUri", "subnetworkUri", "networkTags", "kmsKey",
                                          "idleTtl", "ttl", "stagingBucket", "authenticationConfig",
                                          "resourceManagerTags"},
    "environmentConfig.executionConfig.authenticationConfig": {"userWorkloadAuthenticationType"},
}
QUERY_PARAMS = {
    "jobs.list": {"pageSize", "pageToken", "clusterName", "jobStateMatcher", "filter"},
    "batches.list": {"pageSize", "pageToken", "filter", "orderBy"},
    "batches.get": set(),
    "batches.create": {"batchId", "requestId"},
}


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise invalid(f"Invalid timestamp in filter: {text!r}") from None


# --- filters: comparisons joined by AND ---------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>|:)|(?P<word>[^\s"<>=!:()]+)'
                    r'|(?P<bad>\S))')


def parse_filter(text: str, and_words: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``a = b AND c != "d"`` -> ``[("a", "=", "b"), ("c", "!=", "d")]``; 400 on anything else."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "bad":
            raise invalid(f"Invalid filter {text!r}: unexpected {value!r} (this fake supports comparisons joined "
                          "by AND only)", "filter")
        if kind == "str":
            try:
                value = json.loads(value)
            except ValueError:
                raise invalid(f"Invalid filter {text!r}: bad string {value}", "filter") from None
        tokens.append((kind, value))
    terms = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3:
            raise invalid(f"Invalid filter {text!r}: incomplete comparison", "filter")
        (k1, field), (k2, op), (k3, value) = tokens[i:i + 3]
        if k1 != "word" or k2 != "op" or k3 not in ("word", "str"):
            raise invalid(f"Invalid filter {text!r}: expected FIELD OP VALUE", "filter")
        if field in ("OR", "NOT", "or", "not") or value in ("OR", "NOT"):
            raise invalid(f"Invalid filter {text!r}: only AND is supported", "filter")
        terms.append((field, op, value))
        i += 3
        if i < len(tokens):
            if tokens[i][0] != "word" or tokens[i][1] not in and_words:
                raise invalid(f"Invalid filter {text!r}: expected AND after {field} {op} {value}", "filter")
            i += 1
            if i == len(tokens):
                raise invalid(f"Invalid filter {text!r}: nothing after AND", "filter")
    return terms


def _compare(actual, op: str, wanted) -> bool:
    return {"=": actual == wanted, "!=": actual != wanted, "<": actual < wanted, "<=": actual <= wanted,
            ">": actual > wanted, ">=": actual >= wanted}[op]


def _label_match(labels: dict, key: str, op: str, value: str) -> bool:
    if op == ":" or value == "*":
        present = key in labels
        return present if op in (":", "=") else not present
    if op not in ("=", "!="):
        raise invalid(f"Invalid filter: operator {op} is not supported for labels", "filter")
    return _compare(labels.get(key), op, value)


def batch_matches(batch: dict, terms: list[tuple[str, str, str]]) -> bool:
    for field, op, value in terms:
        if field.startswith("labels."):
            ok = _label_match(batch.get("labels", {}), field[7:], op, value)
        elif field == "state":
            if value not in BATCH_STATES or op not in ("=", "!="):
                raise invalid(f"Invalid filter: state {op} {value}", "filter")
            ok = _compare(batch["state"], op, value)
        elif field in ("batch_id", "batch_uuid"):
            if op not in ("=", "!="):
                raise invalid(f"Invalid filter: operator {op} is not supported for {field}", "filter")
            actual = batch["name"].rsplit("/", 1)[1] if field == "batch_id" else batch["uuid"]
            ok = _compare(actual, op, value)
        elif field == "create_time":
            if op == ":":
                raise invalid("Invalid filter: operator : is not supported for create_time", "filter")
            ok = _compare(parse_time(batch["createTime"]), op, parse_time(value))
        else:
            raise invalid(f"Invalid filter: unknown field {field!r} (batch_id, batch_uuid, state, create_time, "
                          "labels.KEY)", "filter")
        if not ok:
            return False
    return True


def job_matches(job: dict, terms: list[tuple[str, str, str]]) -> bool:
    for field, op, value in terms:
        if field.startswith("labels."):
            ok = _label_match(job.get("labels", {}), field[7:], op, value)
        elif field == "status.state":
            if op != "=" or value not in ("ACTIVE", "NON_ACTIVE"):
                raise invalid(f"Invalid filter: status.state must be = ACTIVE or = NON_ACTIVE, got {op} {value}",
                              "filter")
            ok = (job["status"]["state"] in ACTIVE_JOB_STATES) == (value == "ACTIVE")
        else:
            raise invalid(f"Invalid filter: unknown field {field!r} (status.state, labels.KEY)", "filter")
        if not ok:
            return False
    return True


# --- batch bodies --------------------------------------------------------------------------------------
def validate_batch(body: object) -> dict:
    """The batch of a create request, checked; raises :class:`ApiError` like the service."""
    body = check_fields(body, BATCH_FIELDS, "batch")
    for path, allowed in NESTED_FIELDS.items():
        node = body
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            if not isinstance(node, dict):
                raise invalid(f"Invalid JSON payload received. '{path}' must be an object.")
            check_fields(node, allowed, f"batch.{path}")
    workloads = [w for w in WORKLOADS if w in body]
    if len(workloads) != 1:
        raise invalid("Exactly one batch workload config (pysparkBatch, sparkBatch, ...) must be set, got "
                      f"{len(workloads)}", "batch.batch_config")
    if workloads[0] != "pysparkBatch":
        raise ApiError(501, "UNIMPLEMENTED", f"the fake implements pysparkBatch only, got {workloads[0]}")
    py = body["pysparkBatch"]
    main = py.get("mainPythonFileUri")
    if not main:
        raise invalid("Main python file URI is required", "batch.pyspark_batch.main_python_file_uri")
    for field in ("pythonFileUris", "jarFileUris", "fileUris", "archiveUris", "args"):
        if not isinstance(py.get(field, []), list) or not all(isinstance(u, str) for u in py.get(field, [])):
            raise invalid(f"Invalid value at 'batch.pyspark_batch.{field}': expected a list of strings")
    uris = [main, *py.get("pythonFileUris", []), *py.get("jarFileUris", []), *py.get("fileUris", []),
            *(u.split("#", 1)[0] for u in py.get("archiveUris", []))]
    for u in uris:
        if not URI.match(u):
            raise invalid(f"Invalid URI {u!r}: must be a gs:// or file:// URI", "batch.pyspark_batch")
    if not main.endswith(".py"):
        raise invalid(f"Main python file {main!r} must be a .py file", "batch.pyspark_batch.main_python_file_uri")
    labels = body.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > 32:
        raise invalid("At most 32 labels", "batch.labels")
    for k, v in labels.items():
        if not LABEL_KEY.match(k) or not isinstance(v, str) or not LABEL_VALUE.match(v):
            raise invalid(f"Invalid label {k}={v!r}: keys and values must be lowercase letters, digits, '_' or "
                          "'-' (keys start with a letter), at most 63 characters", "batch.labels")
    runtime = body.get("runtimeConfig", {})
    if "version" in runtime and not RUNTIME_VERSION.match(str(runtime["version"])):
        raise invalid(f"Invalid runtime version {runtime['version']!r}", "batch.runtime_config.version")
    props = runtime.get("properties", {})
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise invalid("Runtime properties must be a map of strings", "batch.runtime_config.properties")
    execution = body.get("environmentConfig", {}).get("executionConfig", {})
    for field in ("ttl", "idleTtl"):
        if field in execution:
            ttl = str(execution[field])
            if not DURATION.match(ttl):
                raise invalid(f"Invalid duration {ttl!r} at 'batch.environment_config.execution_config.{field}'")
            if field == "ttl" and not 600 <= float(ttl[:-1]) <= 14 * 24 * 3600:
                raise invalid(f"ttl {ttl} must be between 10 minutes and 14 days",
                              "batch.environment_config.execution_config.ttl")
    if "serviceAccount" in execution and not SERVICE_ACCOUNT.match(execution["serviceAccount"]):
        raise invalid(f"Invalid service account {execution['serviceAccount']!r}",
                      "batch.environment_config.execution_config.service_account")
    if "networkUri" in execution and "subnetworkUri" in execution:
        raise invalid("Only one of networkUri and subnetworkUri may be set", "batch.environment_config")
    auth = execution.get("authenticationConfig", {}).get("userWorkloadAuthenticationType")
    if auth is not None:
        names = {v: k for k, v in AUTH_TYPES.items()}
        if auth in names:
            auth = names[auth]
        if auth not in AUTH_TYPES:
            raise invalid(f"Invalid value at 'batch.environment_config.execution_config.authentication_config."
                          f"user_workload_authentication_type' ({auth!r})")
        execution["authenticationConfig"]["userWorkloadAuthenticationType"] = auth
    return body


# --- enums on the way out ---------------------------------------------------------------------------------
def _numeric(resource: dict, kind: str) -> dict:
    """A copy of a batch/job/operation with its enums as numbers (``enum-encoding=int``)."""
    out = json.loads(json.dumps(resource))
    if kind == "batch":
        out["state"] = BATCH_STATES[out["state"]]
        for h in out.get("stateHistory", []):
            h["state"] = BATCH_STATES[h["state"]]
        auth = out.get("environmentConfig", {}).get("executionConfig", {}).get("authenticationConfig")
        if auth and "userWorkloadAuthenticationType" in auth:
            auth["userWorkloadAuthenticationType"] = AUTH_TYPES[auth["userWorkloadAuthenticationType"]]
    elif kind == "job":
        for status in (out["status"], *out.get("statusHistory", [])):
            status["state"] = JOB_STATES[status["state"]]
            if "substate" in status:
                status["substate"] = JOB_SUBSTATES[status["substate"]]
    elif kind == "operation":
        out["metadata"]["operationType"] = 1
    return out


class FakeDataproc(GoogleApiFake):
    """The fake service for one project and region; use as a context manager (``url`` is its endpoint)."""

    api = "Dataproc"

    def __init__(self, project: str = "my-shop-dev", region: str = "europe-west1"):
        super().__init__()  # self.requests: (method, path with query)
        self.project, self.region = project, region
        self.batches: dict[str, dict] = {}  # batch id -> resource (enum names), in creation order
        self.jobs: list[dict] = []
        self.objects: dict[str, bytes] = {}  # "bucket/object" -> content (Cloud Storage downloads)
        self.created: list[str] = []  # ids of batches created through the API, in order
        self._plans: dict[str, list[list[tuple[str, str]]]] = {}
        self._pending: dict[str, list[tuple[str, str]]] = {}  # batch id -> states still to go through

    # --- scripting ------------------------------------------------------------------------------------
    def plan(self, job: str, *states: str | tuple[str, str]) -> None:
        """The states the next batch created for ``job`` (its ``job`` label) goes through, one per
        ``batches.get``: ``"RUNNING"`` or ``("FAILED", "state message")``. Plans queue up per job."""
        steps = [(s, "") if isinstance(s, str) else s for s in states]
        for state, _ in steps:
            if state not in BATCH_STATES:
                raise ValueError(f"unknown batch state {state}")
        self._plans.setdefault(job, []).append(steps)

    def add_batch(self, batch_id: str, state: str, *, labels: dict[str, str], created: datetime,
                  ended: datetime | None = None, message: str = "") -> dict:
        """A batch that already exists (history): created at ``created``, in ``state`` since ``ended``
        (terminal states) or since a minute after creation."""
        started = created + timedelta(minutes=1)
        history = [{"state": "PENDING", "stateStartTime": rfc3339(created)}]
        if state != "PENDING":
            history.append({"state": "RUNNING", "stateStartTime": rfc3339(started)})
        batch = self._new_batch(batch_id, {"labels": labels, "pysparkBatch": {
            "mainPythonFileUri": f"gs://{self.project}-artifacts/releases/v1/jobs/batch/run.py",
            "args": [labels.get("job", "x"), "--env", "gcp"]}},
            created)
        batch["state"] = state
        batch["stateMessage"] = message
        batch["stateTime"] = rfc3339(ended or (started if state != "PENDING" else created))
        batch["stateHistory"] = history[:-1] if history[-1]["state"] == state else history
        self.batches[batch_id] = batch
        return batch

    def add_job(self, job_id: str, state: str, *, labels: dict[str, str], cluster: str,
                since: datetime, submitted: datetime | None = None, details: str = "") -> dict:
        """A job on a cluster, in ``state`` since ``since``."""
        submitted = submitted or since - timedelta(seconds=30)
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state}")
        job = {
            "reference": {"projectId": self.project, "jobId": job_id},
            "placement": {"clusterName": cluster, "clusterUuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, cluster))},
            "pysparkJob": {"mainPythonFileUri": f"gs://{self.project}-artifacts/releases/v1/jobs/streaming/app.py"},
            "status": {"state": state, "stateStartTime": rfc3339(since), **({"details": details} if details else {})},
            "statusHistory": [{"state": "PENDING", "stateStartTime": rfc3339(submitted)},
                              {"state": "SETUP_DONE", "stateStartTime": rfc3339(submitted + timedelta(seconds=5))}],
            "labels": labels,
            "jobUuid": str(uuid.uuid4()),
            "done": state in ("CANCELLED", "DONE", "ERROR"),
            "scheduling": {"maxFailuresPerHour": 5},
        }
        self.jobs.append(job)
        return job

    # --- routing ----------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], numeric: bool, raw: bytes,
               content_type: str) -> dict | bytes | None:
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
        if m and method == "GET":
            if query.get("alt") != "media":
                raise invalid("the fake serves object downloads only (alt=media)")
            content = self.objects.get(f"{m.group(1)}/{m.group(2)}")
            if content is None:
                raise ApiError(404, "NOT_FOUND", f"No such object: {m.group(1)}/{m.group(2)}")
            return content

        m = re.fullmatch(r"/v1/projects/([^/]+)/regions/([^/]+)/jobs", path)
        if m and method == "GET":
            self._check_scope(m.group(1), m.group(2), "jobs.list")
            self._check_params(query, "jobs.list")
            return self._list_jobs(query, numeric)

        m = re.fullmatch(r"/v1/projects/([^/]+)/locations/([^/]+)/batches(?:/([^/]+))?", path)
        if m:
            project, location, batch_id = m.groups()
            if method == "GET" and batch_id is None:
                self._check_scope(project, location, "batches.list")
                self._check_params(query, "batches.list")
                return self._list_batches(query, numeric)
            if method == "GET":
                self._check_scope(project, location, "batches.get")
                self._check_params(query, "batches.get")
                return self._get_batch(batch_id, numeric)
            if method == "POST" and batch_id is None:
                self._check_scope(project, location, "batches.create")
                self._check_params(query, "batches.create")
                return self._create_batch(query, json_body(raw, content_type), numeric)
        return None

    def _check_scope(self, project: str, location: str, method: str) -> None:
        if project != self.project:
            raise ApiError(403, "PERMISSION_DENIED",
                           f"Permission 'dataproc.{method.split('.')[0]}.{method.split('.')[1]}' denied on resource "
                           f"'//dataproc.googleapis.com/projects/{project}' (or it may not exist).")
        if location != self.region:
            raise invalid(f"Region '{location}' is invalid or not supported by this service "
                          f"(the fake serves {self.region})")

    @staticmethod
    def _check_params(query: dict, method: str) -> None:
        check_query(query, QUERY_PARAMS[method])

    @staticmethod
    def _listing(key: str, kind: str, items: list, query: dict, default_size: int, numeric: bool) -> dict:
        """A page of ``items`` as a list answer: ``{key: [...], "nextPageToken": ...}`` (at most 1000 a page)."""
        page, token = FakeDataproc._page(items, query, default_size, 1000)
        out: dict = {key: [_numeric(i, kind) if numeric else i for i in page]}
        if token:
            out["nextPageToken"] = token
        return out

    @staticmethod
    def _page(items: list, query: dict, default_size: int, max_size: int) -> tuple[list, str]:
        try:
            size = int(query.get("pageSize") or default_size)
            start = int(query.get("pageToken") or 0)
        except ValueError:
            raise invalid("Invalid page size or page token") from None
        if size < 0 or start < 0 or start > len(items):
            raise invalid("Invalid page size or page token")
        size = min(size or default_size, max_size)
        nxt = start + size
        return items[start:nxt], (str(nxt) if nxt < len(items) else "")

    def _list_jobs(self, query: dict, numeric: bool) -> dict:
        jobs = list(self.jobs)
        if query.get("clusterName"):
            jobs = [j for j in jobs if j["placement"]["clusterName"] == query["clusterName"]]
        if query.get("filter"):
            terms = parse_filter(query["filter"], ("AND",))
            jobs = [j for j in jobs if job_matches(j, terms)]
        elif query.get("jobStateMatcher"):
            matcher = query["jobStateMatcher"]
            names = {str(v): k for k, v in JOB_STATE_MATCHERS.items()}
            matcher = names.get(matcher, matcher)
            if matcher not in JOB_STATE_MATCHERS:
                raise invalid(f"Invalid value at 'job_state_matcher' ({query['jobStateMatcher']!r})")
            if matcher != "ALL":
                jobs = [j for j in jobs if (j["status"]["state"] in ACTIVE_JOB_STATES) == (matcher == "ACTIVE")]
        return self._listing("jobs", "job", jobs, query, 100, numeric)

    def _list_batches(self, query: dict, numeric: bool) -> dict:
        batches = list(self.batches.values())
        order = query.get("orderBy", "")
        if order not in ("", "create_time desc"):
            raise invalid(f"Invalid order_by {order!r}: only unspecified or 'create_time desc' are supported",
                          "order_by")
        if order:
            batches.sort(key=lambda b: parse_time(b["createTime"]), reverse=True)
        if query.get("filter"):
            terms = parse_filter(query["filter"], ("AND", "and"))
            batches = [b for b in batches if batch_matches(b, terms)]
        return self._listing("batches", "batch", batches, query, 20, numeric)

    def _get_batch(self, batch_id: str, numeric: bool) -> dict:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Batch projects/{self.project}/locations/{self.region}/"
                                             f"batches/{batch_id}")
        steps = self._pending.get(batch_id)
        if steps:
            state, message = steps.pop(0)
            now = datetime.now(UTC)
            batch["stateHistory"].append({"state": batch["state"], "stateStartTime": batch["stateTime"],
                                          **({"stateMessage": batch["stateMessage"]} if batch["stateMessage"] else {})})
            batch.update(state=state, stateMessage=message, stateTime=rfc3339(now))
            if state == "RUNNING":
                batch["runtimeInfo"] = {"outputUri": f"gs://dataproc-staging-{self.region}/{batch['uuid']}/driveroutput"}
        return _numeric(batch, "batch") if numeric else batch

    def _new_batch(self, batch_id: str, body: dict, created: datetime) -> dict:
        return {**body,
                "name": f"projects/{self.project}/locations/{self.region}/batches/{batch_id}",
                "uuid": str(uuid.uuid4()),
                "createTime": rfc3339(created),
                "state": "PENDING",
                "stateMessage": "",
                "stateTime": rfc3339(created),
                "creator": "operator@example.com",
                "operation": f"projects/{self.project}/regions/{self.region}/operations/{uuid.uuid4()}",
                "stateHistory": []}

    def _create_batch(self, query: dict, body: object, numeric: bool) -> dict:
        batch_id = query.get("batchId", "")
        if not batch_id:
            batch_id = uuid.uuid4().hex  # the service makes one up when none is given
        if not BATCH_ID.match(batch_id):
            raise invalid(f"Batch ID {batch_id!r} must be 4-63 characters of lowercase letters, digits and '-', "
                          "starting and ending with a letter or digit", "batch_id")
        if "requestId" in query and not REQUEST_ID.match(query["requestId"]):
            raise invalid(f"Invalid request id {query['requestId']!r}", "request_id")
        batch = validate_batch(body)
        if batch_id in self.batches:
            raise ApiError(409, "ALREADY_EXISTS", f"Batch projects/{self.project}/locations/{self.region}/batches/"
                                                  f"{batch_id} already exists")
        for output_only in ("name", "uuid", "createTime", "runtimeInfo", "state", "stateMessage", "stateTime",
                            "creator", "operation", "stateHistory"):
            batch.pop(output_only, None)
        now = datetime.now(UTC)
        resource = self._new_batch(batch_id, batch, now)
        self.batches[batch_id] = resource
        self.created.append(batch_id)
        plans = self._plans.get(resource.get("labels", {}).get("job", ""), [])
        self._pending[batch_id] = plans.pop(0) if plans else [("RUNNING", ""), ("SUCCEEDED", "")]
        operation = {
            "name": resource["operation"],
            "metadata": {"@type": "type.googleapis.com/google.cloud.dataproc.v1.BatchOperationMetadata",
                         "batch": resource["name"], "batchUuid": resource["uuid"], "createTime": rfc3339(now),
                         "operationType": "BATCH", "description": "Batch",
                         "labels": resource.get("labels", {})},
        }
        return _numeric(operation, "operation") if numeric else operation
