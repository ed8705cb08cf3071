"""Where an environment lives on Google Cloud, and the clients that talk to it.

The settings are the ones ``scripts/submit.sh`` uses, under the same names, with the same precedence:
a flag, else the ``SHOP_*`` environment variable, else (with ``--from-terraform``) the output of
``terraform -chdir=terraform output -json``. Keeping one vocabulary means an operator who has
exported ``SHOP_PROJECT=...`` for ``submit.sh`` gets the same environment here.

Clients use the REST transport everywhere, also against Google: the code path the tests drive
through ``tests/fakes/dataproc_api.py`` is then the production one, down to the JSON on the wire
(only TLS and credentials differ). An ``http://`` endpoint gets anonymous credentials: the REST
transport keeps the scheme of an ``api_endpoint`` that has one (``rest_base.py``: ``url_scheme``
applies only to a bare host), so ``http://127.0.0.1:PORT`` reaches the fake in plain HTTP.

A mistake (missing or malformed setting, Terraform not usable, no credentials) raises
:class:`SettingsError` with one line for the user; entry points print it and exit 2.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import google.auth
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.auth.transport.requests import AuthorizedSession

from lib.config import PROJECT_ROOT, batch_chain_order

# google.* stays inside the functions that call the APIs: google-cloud-dataproc is optional (requirements/dev.txt,
# not on Dataproc or in the dashboard image); settings, job lists and batch bodies work without it.

TERRAFORM_DIR = PROJECT_ROOT / "terraform"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class SettingsError(ValueError):
    """A missing or malformed setting; ``str(err)`` is one line meant for the user."""


@dataclass(frozen=True)
class Setting:
    field: str
    flag: str
    env: str
    terraform: str | None
    help: str


# One row per setting: flag, environment variable (as in scripts/submit.sh), Terraform output.
SETTINGS: tuple[Setting, ...] = (
    Setting("project", "--project", "SHOP_PROJECT", "project_id", "GCP project"),
    Setting("region", "--region", "SHOP_REGION", "region", "region of the cluster and the batches"),
    Setting("deploy_env", "--deploy-env", "SHOP_DEPLOY_ENV", "env", "environment (label env=; default dev)"),
    Setting("cluster", "--cluster", "SHOP_DATAPROC_CLUSTER", "dataproc_cluster", "cluster of the streaming job"),
    Setting("artifacts_bucket", "--artifacts-bucket", "SHOP_ARTIFACTS_BUCKET", "artifacts_bucket",
            "bucket holding releases/CURRENT.json"),
    Setting("subnetwork", "--subnet", "SHOP_SUBNETWORK", "subnetwork", "subnetwork of the batches"),
    Setting("service_account", "--service-account", "SHOP_BATCH_SA", "batch_service_account",
            "identity of the batches"),
    Setting("lake_root", "--lake-root", "SHOP_LAKE_ROOT", "lake_root",
            "lake root (default: lake.root of the --env config)"),
    Setting("checkpoints_root", "--checkpoints-root", "SHOP_CHECKPOINTS_ROOT", "checkpoints_root",
            "-> SHOP__LAKE__CHECKPOINTS of the batches"),
    Setting("landing_root", "--landing-root", "SHOP_LANDING_ROOT", "landing_root",
            "-> SHOP__PATHS__DATA_DIR of the batches"),
    Setting("kafka_bootstrap", "--kafka-bootstrap", "SHOP_KAFKA_BOOTSTRAP", "kafka_bootstrap_servers",
            "-> SHOP__KAFKA__BOOTSTRAP_SERVERS of the batches"),
    Setting("kafka_topic", "--kafka-topic", "SHOP_KAFKA_TOPIC", "kafka_topic", "-> SHOP__KAFKA__TOPIC of the batches"),
    Setting("mlflow_uri", "--mlflow-uri", "SHOP_MLFLOW_URI", "mlflow_url", "-> MLFLOW_TRACKING_URI of the batches"),
    Setting("runtime_version", "--runtime-version", "SHOP_BATCH_RUNTIME", "batch_runtime_version",
            "Serverless runtime of the batches (default 3.0)"),
    Setting("endpoint", "--endpoint", "SHOP_DATAPROC_ENDPOINT", None,
            "Dataproc API at this URL instead of <region>-dataproc.googleapis.com; an http:// URL (a local "
            "fake) gets no credentials and also serves the release manifest"),
)


@dataclass(frozen=True)
class Settings:
    project: str = ""
    region: str = ""
    deploy_env: str = ""
    cluster: str = ""
    artifacts_bucket: str = ""
    subnetwork: str = ""
    service_account: str = ""
    lake_root: str = ""
    checkpoints_root: str = ""
    landing_root: str = ""
    kafka_bootstrap: str = ""
    kafka_topic: str = ""
    mlflow_uri: str = ""
    runtime_version: str = ""
    endpoint: str = ""


# Formats, as scripts/submit.sh checks them.
_FORMATS: dict[str, tuple[re.Pattern, str]] = {
    "project": (re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"), "a project id"),
    "region": (re.compile(r"^[a-z]+-[a-z]+[0-9]+$"), "a region such as europe-west1, not a zone"),
    "deploy_env": (re.compile(r"^[a-z][a-z0-9_-]{0,62}$"), "a label value such as dev"),
    "cluster": (re.compile(r"^[a-z]([-a-z0-9]{0,49}[a-z0-9])?$"), "a cluster name"),
    "artifacts_bucket": (re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"), "a bucket name"),
    "subnetwork": (re.compile(r"^[A-Za-z0-9/_.:-]+$"), "a subnetwork URI"),
    "service_account": (re.compile(r"^[a-z][a-z0-9-]{4,29}@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"),
                        "a service account email"),
    "runtime_version": (re.compile(r"^[0-9]+\.[0-9]+$"), "a runtime version such as 3.0"),
    "endpoint": (re.compile(r"^https?://[A-Za-z0-9.\[\]:-]+/?$"), "a URL such as http://127.0.0.1:8080"),
    "mlflow_uri": (re.compile(r"^https?://\S+$"), "an http(s) URL"),
    "kafka_bootstrap": (re.compile(r"^[A-Za-z0-9.-]+:[0-9]+(,[A-Za-z0-9.-]+:[0-9]+)*$"), "host:port[,host:port]"),
}
_DEFAULTS = {"deploy_env": "dev", "runtime_version": "3.0"}


def terraform_outputs(tf_dir: Path = TERRAFORM_DIR) -> dict[str, str]:
    """The scalar outputs of ``terraform output -json`` as text (maps and lists are left out)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        raise SettingsError("--from-terraform needs terraform on PATH")
    try:
        done = subprocess.run([terraform, f"-chdir={tf_dir}", "output", "-no-color", "-json"],  # noqa: S603 — fixed argv, no shell
                              capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise SettingsError("terraform output did not answer within 120 s") from None
    if done.returncode != 0:
        # Terraform's message is a boxed paragraph after CLI warnings: its "Error:" line says it
        lines = [ln.strip("│╷╵ ") for ln in done.stderr.splitlines()]
        error = next((ln.split("Error:", 1)[1].strip() for ln in lines if "Error:" in ln),
                     next((ln for ln in reversed(lines) if ln), "no message"))
        raise SettingsError(f"terraform output failed: {error[:200]} (run make infra-init TF_ENV=<env> first)")
    try:
        outputs = json.loads(done.stdout or "{}")
    except ValueError:
        raise SettingsError("terraform output -json printed something that is not JSON") from None
    values = {}
    for key, out in outputs.items():
        value = out.get("value") if isinstance(out, dict) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            values[key] = str(value)
    return values


def resolve(flags: Mapping[str, str | None], environ: Mapping[str, str],
            terraform: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (by field name), else the environment, else Terraform outputs, else the
    defaults. A deploy env given by flag or environment must agree with the state Terraform reads."""
    values: dict[str, str] = {}
    for s in SETTINGS:
        value = flags.get(s.field) or environ.get(s.env) or ""
        if not value and terraform and s.terraform:
            value = terraform.get(s.terraform, "")
        values[s.field] = value.strip() or _DEFAULTS.get(s.field, "")
    tf_env = (terraform or {}).get("env")
    if tf_env and values["deploy_env"] != tf_env:
        raise SettingsError(f"Terraform's state is environment {tf_env!r} but {values['deploy_env']!r} was asked for "
                            f"(run make infra-init TF_ENV={values['deploy_env']} first)")
    settings = Settings(**values)
    bucket = settings.artifacts_bucket.removeprefix("gs://").rstrip("/")
    return replace(settings, artifacts_bucket=bucket, endpoint=settings.endpoint.rstrip("/"))


def require(settings: Settings, *names: str) -> None:
    """Every named setting is present and well-formed, else :class:`SettingsError` naming the first
    one that is not (and how to give it)."""
    by_field = {s.field: s for s in SETTINGS}
    for name in names:
        value = getattr(settings, name)
        s = by_field[name]
        if not value:
            hint = " (or use --from-terraform)" if s.terraform else ""
            raise SettingsError(f"no {name.replace('_', ' ')}: pass {s.flag} or set {s.env}{hint}")
        check(settings, name)


def check(settings: Settings, name: str) -> None:
    """A setting that is present has its expected format."""
    value = getattr(settings, name)
    if value and name in _FORMATS and not _FORMATS[name][0].match(value):
        raise SettingsError(f"invalid {name.replace('_', ' ')} {value!r} (expected {_FORMATS[name][1]})")


def check_all(settings: Settings) -> None:
    for f in fields(settings):
        check(settings, f.name)


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``45s``, ``1d`` (the forms submit.sh's --ttl takes)."""
    m = re.fullmatch(r"([0-9]+)([smhd])", text.strip())
    if not m:
        raise SettingsError(f"invalid duration {text!r} (e.g. 90m, 2h)")
    return timedelta(seconds=int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


# --- clients -----------------------------------------------------------------------------------------------
def _credentials(endpoint: str) -> Any:
    """Anonymous credentials for a plain-HTTP endpoint (a local fake), else None: the client libraries
    then use Application Default Credentials."""
    if endpoint.startswith("http://"):
        return AnonymousCredentials()

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError:
        raise SettingsError("no Google credentials: run gcloud auth application-default login") from None
    return credentials


def dataproc_clients(settings: Settings) -> tuple[Any, Any]:
    """``(JobControllerClient, BatchControllerClient)`` for the settings' region (REST transport),
    or for ``settings.endpoint`` when given."""
    from google.cloud import dataproc_v1  # deferred: google-cloud-dataproc is optional (requirements/dev.txt only)

    endpoint = settings.endpoint or f"{settings.region}-dataproc.googleapis.com:443"
    credentials = _credentials(settings.endpoint)
    kw = {"transport": "rest", "credentials": credentials, "client_options": ClientOptions(api_endpoint=endpoint)}
    return dataproc_v1.JobControllerClient(**kw), dataproc_v1.BatchControllerClient(**kw)


def storage_session(settings: Settings) -> tuple[Any, str]:
    """``(HTTP session, base URL)`` for Cloud Storage JSON API downloads (the release manifest); a
    plain-HTTP endpoint (the test fake) serves them too."""
    if settings.endpoint.startswith("http://"):
        return requests.Session(), settings.endpoint

    return AuthorizedSession(_credentials(settings.endpoint)), "https://storage.googleapis.com"


JOB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def job_list(text: str) -> list[str]:
    """``gold,score`` -> ``["gold", "score"]``: each a stage of ``jobs/batch/run.py`` (conf/batch_chain.yaml),
    none twice (a job's batch id is made of its name and the second it starts)."""
    jobs = [j.strip() for j in text.split(",") if j.strip()]
    if not jobs:
        raise SettingsError("--jobs is empty: give job names such as gold,score")
    for job in jobs:
        if not JOB_NAME.match(job):
            raise SettingsError(f"invalid job name {job!r}: lowercase letters, digits and '_' (a stage of "
                                "conf/batch_chain.yaml)")
    stages = batch_chain_order()["stages"]
    for job in jobs:
        if job not in stages:
            raise SettingsError(f"no batch job {job}: the stages are {','.join(stages)}")
    twice = sorted({j for j in jobs if jobs.count(j) > 1})
    if twice:
        raise SettingsError(f"job(s) listed twice: {', '.join(twice)}")
    return jobs


def shop_env(settings: Settings) -> dict[str, str]:
    """The ``SHOP__SECTION__KEY`` config overrides every batch gets (``local.shop_env`` in Terraform)."""
    pairs = {"SHOP__LAKE__ROOT": settings.lake_root, "SHOP__LAKE__CHECKPOINTS": settings.checkpoints_root,
             "SHOP__KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap, "SHOP__KAFKA__TOPIC": settings.kafka_topic,
             "SHOP__PATHS__DATA_DIR": settings.landing_root}
    return {k: v for k, v in pairs.items() if v}
