#!/usr/bin/env bash
# scripts/submit.sh - package, upload and submit the platform's Spark jobs to Google Cloud.
#
# Usage:
#   scripts/submit.sh [options] package              build dist/shop_platform-<version>.zip (+ Python deps archive)
#   scripts/submit.sh [options] upload               package + upload a release to gs://<artifacts>/releases/<version>/
#   scripts/submit.sh [options] streaming            upload + (re)submit jobs/streaming/app.py to the Dataproc cluster
#   scripts/submit.sh [options] batch NAME           upload + run stage NAME (jobs/batch/run.py NAME) as a Serverless for Apache Spark batch
#
# Settings (flag, or environment variable; `--from-terraform` fills them from `terraform output`):
#   --project ID              SHOP_PROJECT              GCP project
#   --region REGION           SHOP_REGION               region of the cluster/batches
#   --artifacts-bucket B      SHOP_ARTIFACTS_BUCKET     bucket receiving releases, jars, Python deps
#   --cluster NAME            SHOP_DATAPROC_CLUSTER     streaming: Dataproc cluster
#   --deps-bucket B           SHOP_DATAPROC_BUCKET      batch: Serverless --deps-bucket (staging)
#   --subnet URI              SHOP_SUBNETWORK           batch: subnetwork with Private Google Access
#   --service-account EMAIL   SHOP_BATCH_SA             batch: identity of the batch
#   --lake-root gs://...      SHOP_LAKE_ROOT            -> SHOP__LAKE__ROOT in the job
#   --checkpoints-root gs://  SHOP_CHECKPOINTS_ROOT     -> SHOP__LAKE__CHECKPOINTS
#   --landing-root gs://...   SHOP_LANDING_ROOT         -> SHOP__PATHS__DATA_DIR (optional)
#   --kafka-bootstrap H:P     SHOP_KAFKA_BOOTSTRAP      -> SHOP__KAFKA__BOOTSTRAP_SERVERS
#   --kafka-topic NAME        SHOP_KAFKA_TOPIC          -> SHOP__KAFKA__TOPIC (optional)
#   --mlflow-uri URL          SHOP_MLFLOW_URI           -> MLFLOW_TRACKING_URI of batches (optional)
#   --sendgrid-secret RES     SHOP_SENDGRID_SECRET      -> SENDGRID_API_KEY_SECRET of streaming (optional)
#   --unsubscribe-secret RES  SHOP_UNSUBSCRIBE_SECRET   -> UNSUBSCRIBE_SIGNING_KEY_SECRET of streaming (optional)
#   --unsubscribe-url URL     SHOP_UNSUBSCRIBE_URL      -> SHOP__RETARGET__UNSUBSCRIBE_URL of streaming (required:
#                                                       the public unsubscribe service, terraform output unsubscribe_url)
#   --deploy-env NAME         SHOP_DEPLOY_ENV           label env=<NAME> (default: dev)
#   --version V               SHOP_VERSION              default: git describe --always --dirty
#   --runtime-version V       SHOP_BATCH_RUNTIME        Serverless runtime (default 3.0)
#   --batch-id ID                                       batch: batch id (default <name>-<version>-<utc time>)
#   --ttl DURATION                                      batch: kill the batch after this (default 2h)
#   --max-failures-per-hour N                           streaming: restarts allowed per hour (default 5)
#   --executors N                                       streaming: executor instances (default 2)
#   --jobs-dir DIR                                      entry points (default jobs)
#   --jars-dir DIR                                      repeatable; default var/jars/spark and var/jars/gcp
#   --promote                                           also publish the release as releases/CURRENT.json
#                                                       (the manifest the nightly Workflows chain runs)
#   --no-replace                                        streaming: do not stop the running streaming job first
#   --async                                             batch: return once submitted (streaming is always async)
#   --from-terraform                                    read settings from `terraform -chdir=terraform output -json`
#   --dry-run                                           print the commands, one per line, shell-quoted; run nothing
#   -h, --help
#
# Python dependencies: the streaming cluster installs them at creation (dataproc:pip.packages,
# terraform/dataproc.tf); batches get an archive built here for the Serverless runtime's Python
# (cp312, manylinux x86_64) from requirements/dataproc.txt when it exists, else the pinned list
# below, passed with --archives=...#pydeps and PYTHONPATH=./pydeps (docs/deploy.md).
# Exit codes: 0 ok, 2 invalid input (one-line message on stderr), other = a failing command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="submit"
DEFAULT_PY_PACKAGES=("pydantic==2.12.5" "PyYAML==6.0.3") # keep in sync with requirements/base.txt
RUNTIME_PYTHON="3.12" # Python of the Serverless for Apache Spark 3.0 runtime

die() { echo "$PROG: $*" >&2; exit 2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

# ---- arguments -------------------------------------------------------------------------------
PROJECT="${SHOP_PROJECT:-}"
REGION="${SHOP_REGION:-}"
ARTIFACTS_BUCKET="${SHOP_ARTIFACTS_BUCKET:-}"
CLUSTER="${SHOP_DATAPROC_CLUSTER:-}"
DEPS_BUCKET="${SHOP_DATAPROC_BUCKET:-}"
SUBNET="${SHOP_SUBNETWORK:-}"
BATCH_SA="${SHOP_BATCH_SA:-}"
LAKE_ROOT="${SHOP_LAKE_ROOT:-}"
CHECKPOINTS_ROOT="${SHOP_CHECKPOINTS_ROOT:-}"
LANDING_ROOT="${SHOP_LANDING_ROOT:-}"
KAFKA_BOOTSTRAP="${SHOP_KAFKA_BOOTSTRAP:-}"
KAFKA_TOPIC="${SHOP_KAFKA_TOPIC:-}"
MLFLOW_URI="${SHOP_MLFLOW_URI:-}"
SENDGRID_SECRET="${SHOP_SENDGRID_SECRET:-}"
UNSUBSCRIBE_SECRET="${SHOP_UNSUBSCRIBE_SECRET:-}"
UNSUBSCRIBE_URL="${SHOP_UNSUBSCRIBE_URL:-}"
DEPLOY_ENV="${SHOP_DEPLOY_ENV:-}"
VERSION="${SHOP_VERSION:-}"
RUNTIME_VERSION="${SHOP_BATCH_RUNTIME:-}"
BATCH_ID=""
TTL="2h"
MAX_FAILURES_PER_HOUR="5"
EXECUTORS="2"
JOBS_DIR="jobs"
JARS_DIRS=()
PROMOTE=0
REPLACE=1
ASYNC=0
FROM_TERRAFORM=0
DRY_RUN=0
COMMAND=""
JOB_NAME=""

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) need_value "$@"; PROJECT="$2"; shift 2 ;;
    --region) need_value "$@"; REGION="$2"; shift 2 ;;
    --artifacts-bucket) need_value "$@"; ARTIFACTS_BUCKET="$2"; shift 2 ;;
    --cluster) need_value "$@"; CLUSTER="$2"; shift 2 ;;
    --deps-bucket) need_value "$@"; DEPS_BUCKET="$2"; shift 2 ;;
    --subnet) need_value "$@"; SUBNET="$2"; shift 2 ;;
    --service-account) need_value "$@"; BATCH_SA="$2"; shift 2 ;;
    --lake-root) need_value "$@"; LAKE_ROOT="$2"; shift 2 ;;
    --checkpoints-root) need_value "$@"; CHECKPOINTS_ROOT="$2"; shift 2 ;;
    --landing-root) need_value "$@"; LANDING_ROOT="$2"; shift 2 ;;
    --kafka-bootstrap) need_value "$@"; KAFKA_BOOTSTRAP="$2"; shift 2 ;;
    --kafka-topic) need_value "$@"; KAFKA_TOPIC="$2"; shift 2 ;;
    --mlflow-uri) need_value "$@"; MLFLOW_URI="$2"; shift 2 ;;
    --sendgrid-secret) need_value "$@"; SENDGRID_SECRET="$2"; shift 2 ;;
    --unsubscribe-secret) need_value "$@"; UNSUBSCRIBE_SECRET="$2"; shift 2 ;;
    --unsubscribe-url) need_value "$@"; UNSUBSCRIBE_URL="$2"; shift 2 ;;
    --deploy-env) need_value "$@"; DEPLOY_ENV="$2"; shift 2 ;;
    --version) need_value "$@"; VERSION="$2"; shift 2 ;;
    --runtime-version) need_value "$@"; RUNTIME_VERSION="$2"; shift 2 ;;
    --batch-id) need_value "$@"; BATCH_ID="$2"; shift 2 ;;
    --ttl) need_value "$@"; TTL="$2"; shift 2 ;;
    --max-failures-per-hour) need_value "$@"; MAX_FAILURES_PER_HOUR="$2"; shift 2 ;;
    --executors) need_value "$@"; EXECUTORS="$2"; shift 2 ;;
    --jobs-dir) need_value "$@"; JOBS_DIR="$2"; shift 2 ;;
    --jars-dir) need_value "$@"; JARS_DIRS+=("$2"); shift 2 ;;
    --promote) PROMOTE=1; shift ;;
    --no-replace) REPLACE=0; shift ;;
    --async) ASYNC=1; shift ;;
    --from-terraform) FROM_TERRAFORM=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      if [[ -z "$COMMAND" ]]; then COMMAND="$1"
      elif [[ -z "$JOB_NAME" ]]; then JOB_NAME="$1"
      else die "unexpected argument $1"
      fi
      shift ;;
  esac
done

case "$COMMAND" in
  package|upload|streaming) [[ -z "$JOB_NAME" ]] || die "$COMMAND takes no job name (got $JOB_NAME)" ;;
  batch) [[ -n "$JOB_NAME" ]] || die "batch needs a job name: scripts/submit.sh batch NAME (a stage of conf/batch_chain.yaml)" ;;
  "") die "no command given: package, upload, streaming or batch NAME (see --help)" ;;
  *) die "unknown command $COMMAND: expected package, upload, streaming or batch NAME" ;;
esac

cd "$ROOT"

# ---- settings from Terraform outputs -----------------------------------------------------------
if [[ $FROM_TERRAFORM -eq 1 ]]; then
  command -v terraform >/dev/null 2>&1 || die "--from-terraform needs terraform on PATH"
  tf_json="$(terraform -chdir=terraform output -json)" || die "terraform output failed (run make infra-init TF_ENV=... first)"
  # Flags/env given explicitly win over Terraform outputs.
  while IFS='=' read -r key value; do
    case "$key" in
      project_id) PROJECT="${PROJECT:-$value}" ;;
      region) REGION="${REGION:-$value}" ;;
      env) DEPLOY_ENV="${DEPLOY_ENV:-$value}" ;;
      artifacts_bucket) ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-$value}" ;;
      dataproc_cluster) CLUSTER="${CLUSTER:-$value}" ;;
      dataproc_bucket) DEPS_BUCKET="${DEPS_BUCKET:-$value}" ;;
      subnetwork) SUBNET="${SUBNET:-$value}" ;;
      batch_service_account) BATCH_SA="${BATCH_SA:-$value}" ;;
      lake_root) LAKE_ROOT="${LAKE_ROOT:-$value}" ;;
      checkpoints_root) CHECKPOINTS_ROOT="${CHECKPOINTS_ROOT:-$value}" ;;
      landing_root) LANDING_ROOT="${LANDING_ROOT:-$value}" ;;
      kafka_bootstrap_servers) KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-$value}" ;;
      kafka_topic) KAFKA_TOPIC="${KAFKA_TOPIC:-$value}" ;;
      mlflow_url) MLFLOW_URI="${MLFLOW_URI:-$value}" ;;
      batch_runtime_version) RUNTIME_VERSION="${RUNTIME_VERSION:-$value}" ;;
      secret_env.SENDGRID_API_KEY_SECRET) SENDGRID_SECRET="${SENDGRID_SECRET:-$value}" ;;
      secret_env.UNSUBSCRIBE_SIGNING_KEY_SECRET) UNSUBSCRIBE_SECRET="${UNSUBSCRIBE_SECRET:-$value}" ;;
      unsubscribe_url) UNSUBSCRIBE_URL="${UNSUBSCRIBE_URL:-$value}" ;;
    esac
  done < <(printf '%s' "$tf_json" | python3 -c 'import json,sys
for k,o in json.load(sys.stdin).items():
    v=o.get("value")
    if isinstance(v,dict): [print(f"{k}.{a}={b}") for a,b in v.items() if isinstance(b,str)]
    elif isinstance(v,(str,int,float)): print(f"{k}={v}")')
fi

DEPLOY_ENV="${DEPLOY_ENV:-dev}"
RUNTIME_VERSION="${RUNTIME_VERSION:-3.0}"

# ---- validation (before anything runs) -----------------------------------------------------------
for d in lib ml conf; do
  [[ -d "$d" ]] || die "missing package folder $d/ (run from a checkout of the repository)"
done
[[ -d "$JOBS_DIR" ]] || die "jobs folder $JOBS_DIR does not exist"
JOBS_DIR="${JOBS_DIR%/}"
if [[ "$COMMAND" == "batch" ]]; then
  [[ "$JOB_NAME" =~ ^[a-z][a-z0-9_]{0,40}$ ]] || die "invalid batch job name '$JOB_NAME': lowercase letters, digits and '_' (a stage of conf/batch_chain.yaml)"
  [[ -f "$JOBS_DIR/batch/run.py" ]] || die "no batch entry point $JOBS_DIR/batch/run.py"
  # the stages jobs/batch/run.py knows: the `stages:` list of conf/batch_chain.yaml
  STAGES="$(sed -n 's/^stages:[[:space:]]*\[\(.*\)\].*/\1/p' conf/batch_chain.yaml | tr -d ' ')"
  [[ ",$STAGES," == *",$JOB_NAME,"* ]] || die "no batch job $JOB_NAME: not a stage of conf/batch_chain.yaml ($STAGES)"
fi
if [[ "$COMMAND" == "streaming" ]]; then
  [[ -f "$JOBS_DIR/streaming/app.py" ]] || die "no streaming job $JOBS_DIR/streaming/app.py"
fi

# ---- version -----------------------------------------------------------------------------------
if [[ -z "$VERSION" ]]; then
  VERSION="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || true)"
  [[ -n "$VERSION" ]] || die "cannot derive a version (no git commit yet): pass --version"
fi
[[ "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$ ]] || die "invalid version '$VERSION': letters, digits, '.', '_', '+', '-' (max 63)"
# Label values: lowercase letters, digits, '_' and '-' only.
VERSION_LABEL="$(printf '%s' "$VERSION" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_-' '-')"

strip_gs() { local b="${1#gs://}"; printf '%s' "${b%/}"; }
valid_bucket() { [[ "$1" =~ ^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$ ]]; }

if [[ "$COMMAND" != "package" ]]; then
  [[ -n "$PROJECT" ]] || die "no project: pass --project or set SHOP_PROJECT (or use --from-terraform)"
  [[ "$PROJECT" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "invalid project id '$PROJECT'"
  [[ -n "$REGION" ]] || die "no region: pass --region or set SHOP_REGION"
  [[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "invalid region '$REGION' (a region such as europe-west1, not a zone)"
  [[ -n "$ARTIFACTS_BUCKET" ]] || die "no artifacts bucket: pass --artifacts-bucket or set SHOP_ARTIFACTS_BUCKET"
  ARTIFACTS_BUCKET="$(strip_gs "$ARTIFACTS_BUCKET")"
  valid_bucket "$ARTIFACTS_BUCKET" || die "invalid bucket name '$ARTIFACTS_BUCKET'"
  [[ "$DEPLOY_ENV" =~ ^[a-z][a-z0-9_-]{0,62}$ ]] || die "invalid deploy env '$DEPLOY_ENV' (used as a label value)"
fi

if [[ "$COMMAND" == "streaming" || "$COMMAND" == "batch" ]]; then
  [[ -n "$LAKE_ROOT" ]] || die "no lake root: pass --lake-root or set SHOP_LAKE_ROOT"
  [[ "$LAKE_ROOT" =~ ^gs://[a-z0-9][a-z0-9._-]+[a-z0-9](/.*)?$ ]] || die "lake root must be a gs:// URI, got '$LAKE_ROOT'"
  [[ -z "$LANDING_ROOT" || "$LANDING_ROOT" =~ ^gs:// ]] || die "landing root must be a gs:// URI, got '$LANDING_ROOT'"
  [[ -n "$KAFKA_BOOTSTRAP" ]] || die "no Kafka bootstrap address: pass --kafka-bootstrap or set SHOP_KAFKA_BOOTSTRAP"
  [[ "$KAFKA_BOOTSTRAP" =~ ^[A-Za-z0-9.-]+:[0-9]+(,[A-Za-z0-9.-]+:[0-9]+)*$ ]] || die "invalid Kafka bootstrap '$KAFKA_BOOTSTRAP' (host:port[,host:port])"
  [[ -z "$KAFKA_TOPIC" || "$KAFKA_TOPIC" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid Kafka topic '$KAFKA_TOPIC'"
fi
if [[ "$COMMAND" == "streaming" ]]; then
  [[ -n "$CLUSTER" ]] || die "no cluster: pass --cluster or set SHOP_DATAPROC_CLUSTER"
  [[ "$CLUSTER" =~ ^[a-z]([-a-z0-9]{0,49}[a-z0-9])?$ ]] || die "invalid cluster name '$CLUSTER'"
  [[ -n "$CHECKPOINTS_ROOT" ]] || die "no checkpoints root: pass --checkpoints-root or set SHOP_CHECKPOINTS_ROOT"
  [[ "$CHECKPOINTS_ROOT" =~ ^gs:// ]] || die "checkpoints root must be a gs:// URI, got '$CHECKPOINTS_ROOT'"
  [[ "$MAX_FAILURES_PER_HOUR" =~ ^([0-9]|10)$ ]] || die "--max-failures-per-hour must be 0..10, got '$MAX_FAILURES_PER_HOUR'"
  [[ "$EXECUTORS" =~ ^[1-9][0-9]{0,2}$ ]] || die "--executors must be a positive integer, got '$EXECUTORS'"
  [[ -z "$SENDGRID_SECRET" || "$SENDGRID_SECRET" =~ ^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$ ]] || die "invalid SendGrid secret '$SENDGRID_SECRET' (projects/P/secrets/S[/versions/V])"
  [[ -z "$UNSUBSCRIBE_SECRET" || "$UNSUBSCRIBE_SECRET" =~ ^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$ ]] || die "invalid unsubscribe secret '$UNSUBSCRIBE_SECRET' (projects/P/secrets/S[/versions/V])"
  # Every email carries this link: a marketing email without a working unsubscribe may not be sent.
  [[ -n "$UNSUBSCRIBE_URL" ]] || die "no unsubscribe URL: pass --unsubscribe-url or set SHOP_UNSUBSCRIBE_URL (terraform output unsubscribe_url; deploy the dashboard image first, docs/deploy.md)"
  [[ "$UNSUBSCRIBE_URL" =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._/-]*$ ]] || die "unsubscribe URL must be an https:// URL of the unsubscribe service, got '$UNSUBSCRIBE_URL'"
fi
if [[ "$COMMAND" == "batch" ]]; then
  [[ -n "$DEPS_BUCKET" ]] || die "no deps bucket: pass --deps-bucket or set SHOP_DATAPROC_BUCKET"
  DEPS_BUCKET="$(strip_gs "$DEPS_BUCKET")"
  valid_bucket "$DEPS_BUCKET" || die "invalid deps bucket name '$DEPS_BUCKET'"
  [[ -n "$SUBNET" ]] || die "no subnet: pass --subnet or set SHOP_SUBNETWORK"
  [[ "$SUBNET" =~ ^[A-Za-z0-9/_.:-]+$ ]] || die "invalid subnet '$SUBNET'"
  [[ -n "$BATCH_SA" ]] || die "no batch service account: pass --service-account or set SHOP_BATCH_SA"
  [[ "$BATCH_SA" =~ ^[a-z][a-z0-9-]{4,29}@[a-z0-9.-]+\.iam\.gserviceaccount\.com$ ]] || die "invalid service account '$BATCH_SA'"
  [[ "$RUNTIME_VERSION" =~ ^[0-9]+\.[0-9]+$ ]] || die "invalid runtime version '$RUNTIME_VERSION' (e.g. 3.0)"
  [[ "$TTL" =~ ^[0-9]+[smhd]$ ]] || die "invalid --ttl '$TTL' (e.g. 90m, 2h)"
  [[ -z "$MLFLOW_URI" || "$MLFLOW_URI" =~ ^https?:// ]] || die "invalid MLflow URI '$MLFLOW_URI'"
  if [[ -z "$BATCH_ID" ]]; then
    BATCH_ID="$(printf '%s-%s-%s' "${JOB_NAME//_/-}" "$VERSION_LABEL" "$(date -u +%Y%m%d%H%M%S)" | tr '_' '-' | cut -c1-63)"
    BATCH_ID="${BATCH_ID%-}"
  fi
  [[ "$BATCH_ID" =~ ^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$ ]] || die "invalid batch id '$BATCH_ID' (4-63 chars: lowercase letters, digits, '-')"
fi

# Jars (Delta, Kafka source, Managed Kafka auth handler) ride with every job.
if [[ ${#JARS_DIRS[@]} -eq 0 ]]; then JARS_DIRS=("var/jars/spark" "var/jars/gcp"); fi
JARS_LOCAL=()
if [[ "$COMMAND" != "package" ]]; then
  for d in "${JARS_DIRS[@]}"; do
    [[ -d "$d" ]] || die "jar folder $d does not exist (make setup fetches var/jars/spark, scripts/fetch_gcp_jars.sh var/jars/gcp)"
    while IFS= read -r jar; do JARS_LOCAL+=("$jar"); done < <(find "$d" -maxdepth 1 -name '*.jar' | LC_ALL=C sort)
  done
  [[ ${#JARS_LOCAL[@]} -gt 0 ]] || die "no jars found in ${JARS_DIRS[*]}"
fi

# ---- command helpers ------------------------------------------------------------------------------
# Shell-quote one word like Python's shlex.quote (the dry-run output must be copy-pasteable).
q() {
  local s="$1"
  if [[ -n "$s" && "$s" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}
show() { local out="" a; for a in "$@"; do out+="${out:+ }$(q "$a")"; done; printf '%s\n' "$out"; }
run() {
  if [[ $DRY_RUN -eq 1 ]]; then show "$@"; else "$@"; fi
}
note() { if [[ $DRY_RUN -eq 1 ]]; then printf '# %s\n' "$*"; else echo "$PROG: $*" >&2; fi; }

if [[ $DRY_RUN -eq 0 && "$COMMAND" != "package" ]]; then
  command -v gcloud >/dev/null 2>&1 || die "gcloud not found on PATH (install the Google Cloud CLI, or use --dry-run)"
fi

# One-line Python helpers (no dependency beyond the standard library).
ZIP_PY='import os,sys,zipfile;out,base=sys.argv[1],sys.argv[2];fs=sorted(os.path.relpath(os.path.join(d,f),base) for a in sys.argv[3:] for d,_,names in os.walk(os.path.join(base,a)) for f in names if "__pycache__" not in d.split(os.sep) and not f.endswith((".pyc",".pyo")));z=zipfile.ZipFile(out,"w",zipfile.ZIP_DEFLATED);[z.write(os.path.join(base,p),p) for p in fs];z.close();print(out,len(fs),"files")'
MANIFEST_PY='import json,sys;out=sys.argv[1];kv=[a.split("=",1) for a in sys.argv[2:]];m={k:v for k,v in kv if k!="jar"};m["jars"]=[v for k,v in kv if k=="jar"];open(out,"w").write(json.dumps(m,indent=2,sort_keys=True)+"\n");print(out)'

# ---- package ------------------------------------------------------------------------------------
DIST="dist"
CODE_ZIP="$DIST/shop_platform-$VERSION.zip"

if [[ -f requirements/dataproc.txt ]]; then
  PY_REQ_ARGS=(-r requirements/dataproc.txt)
  PY_REQ_KEY="$(cat requirements/dataproc.txt)"
else
  PY_REQ_ARGS=("${DEFAULT_PY_PACKAGES[@]}")
  PY_REQ_KEY="${DEFAULT_PY_PACKAGES[*]}"
fi
PYDEPS_HASH="$(printf '%s|%s|manylinux_x86_64' "$PY_REQ_KEY" "$RUNTIME_PYTHON" | sha256sum | cut -c1-12)"
PYDEPS_NAME="pydeps-cp${RUNTIME_PYTHON/./}-$PYDEPS_HASH"
PYDEPS_DIR="$DIST/$PYDEPS_NAME"
PYDEPS_ZIP="$DIST/$PYDEPS_NAME.zip"

run mkdir -p "$DIST"
run python3 -c "$ZIP_PY" "$CODE_ZIP" . lib ml conf
if [[ $DRY_RUN -eq 1 || ! -f "$PYDEPS_ZIP" ]]; then
  run rm -rf "$PYDEPS_DIR"
  run python3 -m pip install --quiet --disable-pip-version-check --no-compile --target "$PYDEPS_DIR" \
    --only-binary=:all: --implementation cp --python-version "$RUNTIME_PYTHON" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    "${PY_REQ_ARGS[@]}"
  run python3 -c "$ZIP_PY" "$PYDEPS_ZIP" "$PYDEPS_DIR" .
fi
[[ "$COMMAND" == "package" ]] && exit 0

# ---- upload -------------------------------------------------------------------------------------
GS="gs://$ARTIFACTS_BUCKET"
RELEASE="$GS/releases/$VERSION"
CODE_URI="$RELEASE/shop_platform-$VERSION.zip"
PYDEPS_URI="$GS/pydeps/$PYDEPS_NAME.zip"
MANIFEST="$DIST/release-$VERSION.json"

JAR_URIS=()
for jar in "${JARS_LOCAL[@]}"; do
  JAR_URIS+=("$GS/jars/$(basename "$(dirname "$jar")")/$(basename "$jar")")
done
JARS_CSV="$(IFS=,; printf '%s' "${JAR_URIS[*]}")"

run gcloud storage cp "$CODE_ZIP" "$CODE_URI" --project="$PROJECT"
run gcloud storage rsync "$JOBS_DIR" "$RELEASE/jobs" --recursive --exclude='.*__pycache__.*|.*\.pyc$' --project="$PROJECT"
for d in "${JARS_DIRS[@]}"; do
  run gcloud storage rsync "$d" "$GS/jars/$(basename "$d")" --exclude='.*\.stamp$' --project="$PROJECT"
done
run gcloud storage cp "$PYDEPS_ZIP" "$PYDEPS_URI" --project="$PROJECT"
manifest_args=(version="$VERSION" base="$RELEASE" code_zip="$CODE_URI" pydeps="$PYDEPS_URI")
for uri in "${JAR_URIS[@]}"; do manifest_args+=(jar="$uri"); done
run python3 -c "$MANIFEST_PY" "$MANIFEST" "${manifest_args[@]}"
run gcloud storage cp "$MANIFEST" "$RELEASE/release.json" --project="$PROJECT"
if [[ $PROMOTE -eq 1 ]]; then
  run gcloud storage cp "$MANIFEST" "$GS/releases/CURRENT.json" --project="$PROJECT"
fi
[[ "$COMMAND" == "upload" ]] && exit 0

# ---- job settings shared by streaming and batch ------------------------------------------------------
# conf/gcp.yaml overrides (lib/config.py: SHOP__<SECTION>__<KEY>).
SHOP_ENV_VARS=("SHOP__LAKE__ROOT=$LAKE_ROOT" "SHOP__KAFKA__BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP")
[[ -n "$CHECKPOINTS_ROOT" ]] && SHOP_ENV_VARS+=("SHOP__LAKE__CHECKPOINTS=$CHECKPOINTS_ROOT")
[[ -n "$KAFKA_TOPIC" ]] && SHOP_ENV_VARS+=("SHOP__KAFKA__TOPIC=$KAFKA_TOPIC")
[[ -n "$LANDING_ROOT" ]] && SHOP_ENV_VARS+=("SHOP__PATHS__DATA_DIR=$LANDING_ROOT")

join_properties() { # gcloud list flag; switch to the ^|^ delimiter if a value contains a comma
  local IFS=','
  local all="$*"
  local n_commas="${all//[^,]/}"
  if [[ ${#n_commas} -gt $(($# - 1)) ]]; then IFS='|'; printf '^|^%s' "$*"; else printf '%s' "$all"; fi
}
LABELS="app=shop-platform,env=$DEPLOY_ENV,version=$VERSION_LABEL"

# ---- streaming ------------------------------------------------------------------------------------
if [[ "$COMMAND" == "streaming" ]]; then
  # Cluster deploy mode: the driver runs in a YARN container, so its environment comes from
  # spark.yarn.appMasterEnv.* (spark.executorEnv.* for executors).
  props=("spark.submit.deployMode=cluster" "spark.dynamicAllocation.enabled=false" "spark.executor.instances=$EXECUTORS")
  for kv in "${SHOP_ENV_VARS[@]}"; do props+=("spark.yarn.appMasterEnv.$kv" "spark.executorEnv.$kv"); done
  [[ -n "$SENDGRID_SECRET" ]] && props+=("spark.yarn.appMasterEnv.SENDGRID_API_KEY_SECRET=$SENDGRID_SECRET")
  [[ -n "$UNSUBSCRIBE_SECRET" ]] && props+=("spark.yarn.appMasterEnv.UNSUBSCRIBE_SIGNING_KEY_SECRET=$UNSUBSCRIBE_SECRET")
  props+=("spark.yarn.appMasterEnv.SHOP__RETARGET__UNSUBSCRIBE_URL=$UNSUBSCRIBE_URL")

  if [[ $REPLACE -eq 1 ]]; then
    # Two queries on one checkpoint must never run together: stop the running one first.
    list_cmd=(gcloud dataproc jobs list --project="$PROJECT" --region="$REGION" --cluster="$CLUSTER"
      --state-filter=active --filter='labels.component=streaming AND labels.app=shop-platform'
      --format='value(reference.jobId)')
    if [[ $DRY_RUN -eq 1 ]]; then
      show "${list_cmd[@]}"
      note "for each job id listed above: gcloud dataproc jobs kill ID --project=$PROJECT --region=$REGION --quiet, then wait until it is no longer active"
    else
      for id in $("${list_cmd[@]}"); do
        note "stopping running streaming job $id"
        gcloud dataproc jobs kill "$id" --project="$PROJECT" --region="$REGION" --quiet >/dev/null
        for _ in $(seq 1 60); do
          state="$(gcloud dataproc jobs describe "$id" --project="$PROJECT" --region="$REGION" --format='value(status.state)')"
          case "$state" in CANCELLED|DONE|ERROR) break ;; esac
          sleep 10
        done
        case "$state" in CANCELLED|DONE|ERROR) ;; *) echo "$PROG: job $id still $state after 10 minutes; not starting a second one" >&2; exit 1 ;; esac
      done
    fi
  fi

  run gcloud dataproc jobs submit pyspark "$RELEASE/jobs/streaming/app.py" \
    --project="$PROJECT" --region="$REGION" --cluster="$CLUSTER" \
    --py-files="$CODE_URI" \
    --jars="$JARS_CSV" \
    --properties="$(join_properties "${props[@]}")" \
    --max-failures-per-hour="$MAX_FAILURES_PER_HOUR" \
    --labels="$LABELS,component=streaming" \
    --async \
    -- --env gcp
  exit 0
fi

# ---- batch ----------------------------------------------------------------------------------------
# Serverless has no YARN: driver environment through spark.dataproc.driverEnv.*.
props=("spark.dataproc.driverEnv.PYTHONPATH=./pydeps" "spark.executorEnv.PYTHONPATH=./pydeps")
for kv in "${SHOP_ENV_VARS[@]}"; do props+=("spark.dataproc.driverEnv.$kv" "spark.executorEnv.$kv"); done
[[ -n "$MLFLOW_URI" ]] && props+=("spark.dataproc.driverEnv.MLFLOW_TRACKING_URI=$MLFLOW_URI")

batch_cmd=(gcloud dataproc batches submit pyspark "$RELEASE/jobs/batch/run.py"
  --project="$PROJECT" --region="$REGION" --version="$RUNTIME_VERSION" --batch="$BATCH_ID"
  --subnet="$SUBNET" --service-account="$BATCH_SA" --user-workload-authentication-type=SERVICE_ACCOUNT
  --deps-bucket="gs://$DEPS_BUCKET"
  --py-files="$CODE_URI"
  --jars="$JARS_CSV"
  --archives="$PYDEPS_URI#pydeps"
  --properties="$(join_properties "${props[@]}")"
  --labels="$LABELS,component=batch,job=$JOB_NAME"
  --ttl="$TTL")
[[ $ASYNC -eq 1 ]] && batch_cmd+=(--async)
run "${batch_cmd[@]}" -- "$JOB_NAME" --env gcp
