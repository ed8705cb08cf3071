"""Production on Google Cloud: is it healthy, and run the nightly chain now (google-cloud-dataproc, no Spark).

    python jobs/ops/cloud_status.py [status] [--from-terraform] [--json] [--max-batch-age 10m] [--max-nightly-age 26h]
    python jobs/ops/cloud_status.py run-chain [--from-terraform] [--jobs gold,score] [--no-wait] [--release URI]

``status`` (the default): the streaming job on the cluster and the lakehouse's last micro-batch
(``<lake root>/ops/quality_batches``), then the latest nightly batch of each job of the chain;
exit 1 when something is unhealthy. ``run-chain``: the nightly chain from this machine, one
Serverless batch per job, in order, with progress; exit 1 at the first batch that does not succeed.
Settings as in ``scripts/submit.sh`` (flags, ``SHOP_*`` variables, ``--from-terraform``);
``make cloud-status`` / ``make cloud-chain`` pass ``--from-terraform --deploy-env $(TF_ENV)``.
Exit codes: 0 healthy / chain done, 1 unhealthy / chain stopped / API error, 2 a setting or flag
(one line on stderr), 130 interrupted. Details: lib/cloud/dataproc_ops.py, lib/cloud/chain.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from google.api_core.exceptions import GoogleAPIError  # noqa: E402
from google.auth.exceptions import GoogleAuthError  # noqa: E402
from requests import RequestException  # noqa: E402

from lib.cloud import chain, gcp  # noqa: E402
from lib.cloud import dataproc_ops as ops  # noqa: E402
from lib.config import ConfigError, load_config  # noqa: E402
from lib.delta_io import one_line, quiet_rust_log  # noqa: E402

PROG = "cloud-status"
COMMANDS = ("status", "run-chain")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{PROG}: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS for a in argv) and not {"-h", "--help"} & set(argv):
        argv.insert(0, "status")
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    for s in gcp.SETTINGS:
        common.add_argument(s.flag, dest=s.field, metavar=s.env, help=f"{s.help} (env {s.env})")
    common.add_argument("--from-terraform", action="store_true",
                        help="fill unset settings from `terraform -chdir=terraform output -json`")
    common.add_argument("--env", default="gcp", help="config (conf/<env>.yaml) for the lake root when none is given")
    common.add_argument("--jobs", help="comma-separated nightly jobs, in order (default: the nightly chain)")
    common.add_argument("--json", action="store_true", help="print one JSON object")

    st = sub.add_parser("status", parents=[common], help="health of the streaming job and the nightly batches")
    st.add_argument("--max-batch-age", default="10m", help="oldest acceptable last micro-batch (default 10m)")
    st.add_argument("--max-nightly-age", default="26h", help="oldest acceptable nightly success (default 26h)")

    rc = sub.add_parser("run-chain", parents=[common], help="run the nightly chain now, one batch after the other")
    rc.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                    help="follow each batch until it ends (default); --no-wait creates one job's batch and returns")
    rc.add_argument("--release", help="release manifest, gs:// or a local file "
                                      "(default gs://<artifacts bucket>/releases/CURRENT.json)")
    rc.add_argument("--ttl", default="2h", help="each batch is killed after this long (default 2h)")
    rc.add_argument("--poll-seconds", type=float, default=10.0, help="between two looks at a running batch")
    return p.parse_args(argv)


def _settings(args: argparse.Namespace) -> gcp.Settings:
    flags = {s.field: getattr(args, s.field) for s in gcp.SETTINGS}
    terraform = gcp.terraform_outputs() if args.from_terraform else None
    settings = gcp.resolve(flags, os.environ, terraform)
    gcp.check_all(settings)
    if not settings.lake_root:  # the config's lake root (SHOP__LAKE__ROOT overrides it there)
        settings = dataclasses.replace(settings, lake_root=load_config(args.env).lake.root)
    if "<" in settings.lake_root:
        raise gcp.SettingsError(f"the lake root {settings.lake_root!r} of config {args.env!r} is a placeholder: "
                                "pass --lake-root, set SHOP_LAKE_ROOT or use --from-terraform")
    return settings


def status(args: argparse.Namespace, settings: gcp.Settings) -> int:
    gcp.require(settings, "project", "region", "cluster", "deploy_env")
    jobs = gcp.job_list(args.jobs) if args.jobs else ops.default_jobs()
    max_batch_age, max_age = gcp.parse_duration(args.max_batch_age), gcp.parse_duration(args.max_nightly_age)
    job_client, batch_client = gcp.dataproc_clients(settings)
    now = datetime.now(UTC)
    streaming = ops.streaming_status(job_client, project=settings.project, region=settings.region,
                                     cluster=settings.cluster, deploy_env=settings.deploy_env,
                                     lake_root=settings.lake_root, max_batch_age=max_batch_age, now=now)
    nightly = ops.nightly_status(batch_client, project=settings.project, region=settings.region,
                                 deploy_env=settings.deploy_env, jobs=jobs, max_age=max_age, now=now)
    ok, _ = ops.health(streaming, nightly)
    if args.json:
        print(json.dumps(ops.as_json(streaming, nightly, now=now, max_batch_age=max_batch_age, max_age=max_age,
                                     project=settings.project, region=settings.region,
                                     deploy_env=settings.deploy_env)))
    else:
        print(f"{ops.APP_LABEL} {settings.deploy_env}: project {settings.project}, region {settings.region}, "
              f"{ops.fmt_time(now, True)} (times UTC)\n")
        print("\n".join(ops.render(streaming, nightly, now=now, max_batch_age=max_batch_age, max_age=max_age)))
    return 0 if ok else 1


def run_chain(args: argparse.Namespace, settings: gcp.Settings) -> int:
    gcp.require(settings, "project", "region", "deploy_env", "subnetwork", "service_account", "runtime_version")
    if not settings.lake_root.startswith("gs://"):
        raise gcp.SettingsError(f"the batches need a gs:// lake root, got {settings.lake_root!r}")
    jobs = gcp.job_list(args.jobs) if args.jobs else ops.default_jobs()
    if not args.wait and len(jobs) != 1:
        raise gcp.SettingsError("--no-wait runs one job (--jobs NAME): the next job of a chain starts when the "
                                "previous one has succeeded")
    if args.poll_seconds < 0:
        raise gcp.SettingsError("--poll-seconds must be >= 0")
    ttl = gcp.parse_duration(args.ttl)
    if not timedelta(minutes=10) <= ttl <= timedelta(days=14):
        raise gcp.SettingsError(f"--ttl {args.ttl} must be between 10m and 14d (the Serverless limits)")
    if not args.release:
        gcp.require(settings, "artifacts_bucket")
    uri = args.release or f"gs://{settings.artifacts_bucket}/releases/CURRENT.json"
    session, storage_url = gcp.storage_session(settings) if uri.startswith("gs://") else (None, "")
    release = chain.read_release(uri, session, storage_url)
    spec = chain.BatchSpec(project=settings.project, region=settings.region, deploy_env=settings.deploy_env,
                         release=release, runtime_version=settings.runtime_version,
                         properties=chain.batch_properties(gcp.shop_env(settings), settings.mlflow_uri),
                         service_account=settings.service_account, subnetwork=settings.subnetwork, ttl=ttl)
    _, batch_client = gcp.dataproc_clients(settings)
    progress = sys.stderr if args.json else sys.stdout
    print(f"nightly chain {' -> '.join(jobs)}: release {release.version}, {settings.project}/{settings.region}",
          file=progress, flush=True)
    result = chain.run_chain(batch_client, spec, jobs, out=lambda line: print(line, file=progress, flush=True),
                           poll_seconds=args.poll_seconds, wait=args.wait)
    if args.json:
        print(json.dumps(ops.to_plain({"ok": result.ok, "reason": result.reason, "release": release.version,
                                     "steps": [vars(s) for s in result.steps], "not_run": result.not_run})))
    if result.ok:
        print("chain done" if args.wait else "batch created", file=progress)
        return 0
    print(f"{PROG}: {result.reason}", file=sys.stderr)
    return 130 if result.interrupted else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # a flag mistake (one line printed) or --help
        return int(exc.code or 0)
    try:
        settings = _settings(args)
        return status(args, settings) if args.command == "status" else run_chain(args, settings)
    except (gcp.SettingsError, ConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except GoogleAuthError as exc:
        print(f"{PROG}: Google credentials: {one_line(exc)} (gcloud auth application-default login)",
              file=sys.stderr)
        return 2
    except chain.ReleaseError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except GoogleAPIError as exc:
        print(f"{PROG}: Dataproc API: {ops.one_line_api(exc)}", file=sys.stderr)
        return 1
    except RequestException as exc:
        print(f"{PROG}: cannot reach the API: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # deltalake's Rust side logs warnings straight to stderr (thousands of lines for one damaged log);
    # the user gets errors as one line from us. Set before deltalake is first imported.
    quiet_rust_log()
    sys.exit(main())
