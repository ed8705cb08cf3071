"""One typed loader for ``conf/<env>.yaml`` plus environment overrides.

Which file: ``--env NAME`` on a job's command line, else ``SHOP_ENV``, else ``local``
(``conf/local.yaml``). A path ending in ``.yaml`` may be given instead of a name.

Overrides: any setting can be overridden by an environment variable named
``SHOP__<SECTION>__<KEY>`` (double underscores separate levels, case-insensitive), e.g.
``SHOP__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or ``SHOP__STREAMING__TRIGGER_SECONDS=1``.
Values are parsed as YAML scalars (``1`` -> int, ``true`` -> bool, ``[a, b]`` -> list).
pydantic-settings reads them (:class:`Config` is a ``BaseSettings``; precedence: defaults < YAML < env).

Relative paths in the ``lake``/``paths`` sections are resolved against the project root, so a job
behaves the same from any working directory. ``gs://`` URIs are kept as they are.

A mistake (unknown key, wrong type, bad value) raises :class:`ConfigError` whose message is one
line naming the key and the value; entry points print it and exit 2.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"
ENV_PREFIX = "SHOP__"
_NESTED = "__"


class ConfigError(ValueError):
    """A configuration mistake; ``str(err)`` is one line meant for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: str) -> str:
    if "://" in value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (PROJECT_ROOT / p).resolve())


class LakeConfig(_Section):
    root: str = "var/lake"
    checkpoints: str = "var/checkpoints"

    @field_validator("root", "checkpoints")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return _resolve_path(v)

    def table(self, layer: str, name: str) -> str:
        """Location of a Delta table: ``<root>/<layer>/<name>``."""
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def checkpoint(self, query: str) -> str:
        return f"{self.checkpoints.rstrip('/')}/{query}"


class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = Field(default="events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    # none: plaintext (local broker); gcp_oauth: SASL_SSL + OAUTHBEARER with Google's login handler
    auth: Literal["none", "gcp_oauth"] = "none"
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    # rows per micro-batch (all partitions); set (default), the lakehouse finishes each batch on the
    # driver (lib/lakehouse.py); None: unbounded batches, processed in Spark
    max_offsets_per_trigger: int | None = Field(default=50_000, ge=1)
    fail_on_data_loss: bool = True

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: str) -> str:
        for part in v.split(","):
            host, _, port = part.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return v


class PubSubLiteConfig(_Section):
    """Deprecated: Pub/Sub Lite is turned down on 2027-01-31. Kept only to build reader options."""

    project: str = ""
    location: str = ""
    subscription: str = ""


class SourceConfig(_Section):
    kind: Literal["kafka", "pubsublite"] = "kafka"
    pubsublite: PubSubLiteConfig = PubSubLiteConfig()


class SparkConfig(_Section):
    # local[N] for the embedded default; empty on Dataproc (the cluster decides)
    master: str = "local[2]"
    app_name: str = "shop-platform"
    # folder of JVM jars fetched by `make setup`; empty when the cluster/submit provides them
    jars_dir: str = "var/jars/spark"
    shuffle_partitions: int = Field(default=4, ge=1)
    # the batch jobs' shuffles start with this many partitions and adaptive execution coalesces them
    # to ~64 MB each: a small load keeps a few tasks, five months get enough (with the streaming
    # figure, 2, a 20.7M-row backfill sorted 10M rows per task and ran out of heap)
    batch_shuffle_partitions: int = Field(default=64, ge=1)
    ui_enabled: bool = False
    driver_memory: str = "2g"
    # a local batch job's heap (its driver is its executor): 2g ran out caching silver for gold at
    # 20.7M rows; the JVM grows to it only when a job needs it
    batch_driver_memory: str = "6g"
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("jars_dir")
    @classmethod
    def _jars(cls, v: str) -> str:
        return _resolve_path(v) if v else v

    @field_validator("master")
    @classmethod
    def _master(cls, v: str) -> str:  # Spark's master URL forms; anything else only fails as the JVM starts
        if not re.fullmatch(r"|local(\[([1-9][0-9]*|\*)(,[1-9][0-9]*)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn"
                            r"|(spark|k8s|mesos)://\S+", v.strip()):
            raise ValueError(f"expected a Spark master such as local[2], local[*], yarn or spark://host:7077 "
                             f"(empty on Dataproc), got {v!r}")
        return v.strip()

    @field_validator("driver_memory", "batch_driver_memory")
    @classmethod
    def _memory(cls, v: str) -> str:  # the JVM's -Xmx form; anything else only fails as the driver's JVM starts
        if not re.fullmatch(r"[1-9][0-9]*[kmgt]", v.strip().lower()):
            raise ValueError(f"expected a JVM memory size such as 512m or 6g, got {v!r}")
        return v.strip().lower()

    @field_validator("extra", mode="before")
    @classmethod
    def _as_strings(cls, v):
        if isinstance(v, dict):  # YAML/env parse `true`, `2` etc.: Spark wants the text
            return {k: (str(x).lower() if isinstance(x, bool) else str(x)) for k, x in v.items()}
        return v


class StreamingConfig(_Section):
    # the lakehouse query (silver, gold, ops): sets how fresh the dashboard is
    trigger_seconds: float = Field(default=2.0, gt=0)
    # the bronze archive: nobody waits for it, so fewer, larger commits
    bronze_trigger_seconds: float = Field(default=10.0, gt=0)
    # minutes of event time (before the newest broker time) whose silver keys the driver keeps in
    # memory to drop exact duplicates without reading silver back (lib.recent_silver); older
    # duplicates are still found, by a read of silver for the minutes a batch reaches back to
    dedupe_index_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    # the streaming app's local master (spark.master local[N]) gets this many task slots more than N:
    # a sessions task holds its slot while its Python worker computes, so without a spare slot a
    # lakehouse batch waits for it (issue #15, docs/performance.md); no effect on Dataproc
    local_extra_task_slots: int = Field(default=1, ge=0, le=64)


class GoldConfig(_Section):
    top_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    top_k: int = Field(default=10, ge=1, le=1000)


class SessionsConfig(_Section):
    """Cart sessions and their expiry (lib.sessions; applyInPandasWithState)."""

    # a session expires after this much inactivity (event time)
    gap_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    # how late (event time) an event may arrive and still count; also the floor of the email latency
    watermark_delay_seconds: float = Field(default=20.0, ge=0)
    trigger_seconds: float = Field(default=5.0, gt=0)
    # Python state is grouped in this many buckets (by user): one Python call per bucket per batch
    buckets: int = Field(default=16, ge=1, le=4096)
    # event times more than this ahead of the broker's receive time are clamped (client clock skew
    # must not push the watermark forward)
    max_future_seconds: float = Field(default=60.0, ge=0)
    # topic of clock ticks that advance event time while the shop is quiet (see lib.clock)
    clock_topic: str = Field(default="events-clock", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    # publish a tick when no event time has arrived for this long; 0 disables the ticker
    idle_seconds: float = Field(default=2.0, ge=0)
    tick_seconds: float = Field(default=1.0, gt=0)
    # while no tick would expire a session (the buckets' earliest expiry is ahead; or, before they have
    # reported, a tick is past the latest event time + gap + watermark delay), one tick this often
    # instead: a heartbeat through Kafka and the sessions query (its micro-batches are what the GCP
    # stall alert counts), not a micro-batch every tick_seconds for nothing
    quiet_tick_seconds: float = Field(default=60.0, gt=0, le=3600)
    # OS niceness of the sessions query's Python workers (0 = as the rest): on a small machine the
    # lakehouse query (dashboard freshness, p95 10 s) then gets the CPU first and the sessions query
    # (emails, p99 60 s) what is left (issue #15, docs/performance.md)
    python_nice: int = Field(default=5, ge=0, le=19)


class RetargetConfig(_Section):
    """Abandoned-cart emails: business rules, message content and the sender (lib.retarget)."""

    sender: Literal["smtp", "sendgrid"] = "smtp"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    sendgrid_url: str = "https://api.sendgrid.com"
    # names of environment variables holding secrets (filled from Secret Manager on GCP)
    sendgrid_api_key_env: str = "SENDGRID_API_KEY"
    signing_key_env: str = "UNSUBSCRIBE_SIGNING_KEY"
    from_address: str = "offers@shop.example"
    from_name: str = "Cosmetics Shop"
    shop_url: str = "https://shop.example"
    # the dashboard app serves /unsubscribe locally; on GCP the public unsubscribe service (Terraform
    # output unsubscribe_url, handed to the streaming job by scripts/submit.sh). None: no email is sent.
    unsubscribe_url: str | None = "http://127.0.0.1:8050/unsubscribe"
    # --- business rules (each one recorded as a decision per abandoned cart) ---
    require_consent: bool = True
    suppress_purchased: bool = True
    cap_days: float = Field(default=7.0, ge=0)  # at most one offer per user per N days; 0 = no cap
    control_share: float = Field(default=0.10, ge=0, le=1)
    control_salt: str = "control-v1"  # changing it reshuffles who is in the control group
    offer_valid_days: int = Field(default=7, ge=1, le=365)
    # unsubscribe links carry their issue time and work this long (lib.retarget.message; keys: docs/deploy.md)
    unsubscribe_valid_days: int = Field(default=180, ge=30, le=3650)
    # link-signing keys: the newest signs, the newest N enabled Secret Manager versions verify
    signing_keys_max: int = Field(default=5, ge=1, le=50)
    # --- dispatcher loop ---
    poll_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=200, ge=1)
    # parallel connections to the mail server / API while sending a batch
    send_concurrency: int = Field(default=4, ge=1, le=32)
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    # an offer not sent this long after its cart expired (an outage) is decided `stale` instead; 0 = never
    # (a replay of historical files: run-once sets 0, its carts expired years ago by the wall clock)
    stale_after_hours: float = Field(default=24.0, ge=0)
    # account-level errors (HTTP 401/403, SMTP auth) pause sending; a new sender (the key read again)
    # tries one message this often until it goes through
    circuit_probe_seconds: float = Field(default=30.0, gt=0)
    # SendGrid's Email Activity API lists a message a while after accepting it: a send is proven absent
    # (and sent again) only when its attempt is at least this old and the API still does not list it
    sendgrid_activity_settle_seconds: float = Field(default=120.0, ge=0)
    # one dispatcher at a time (lib/retarget/lease.py): lease time-to-live, renewed every third of it
    lease_seconds: float = Field(default=30.0, ge=1)
    # where `lib.retarget.subscribers` loads the subscriber list from when asked (CSV)
    subscribers_csv: str = ""
    # personal data: `maintain` VACUUMs retarget/* and cuts their Delta logs after this many hours, so
    # replaced subscriber lists and deleted rows are physically gone then (docs/retarget.md, Personal data)
    history_retention_hours: int = Field(default=168, ge=1)

    @field_validator("shop_url", "unsubscribe_url", "sendgrid_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("from_address")
    @classmethod
    def _address(cls, v: str) -> str:
        # the rules the dispatcher applies to every recipient (lib.retarget.message.check_address)
        try:
            if not v.isascii():
                raise EmailNotValidError("not ASCII")
            validate_email(v, check_deliverability=False, allow_smtputf8=False, globally_deliverable=False,
                           test_environment=True)
        except EmailNotValidError:
            raise ValueError(f"expected a plain address like offers@shop.example, got {v!r}") from None
        return v


class PathsConfig(_Section):
    data_dir: str = "var/data"
    log_dir: str = "var/log"
    run_dir: str = "var/run"

    @field_validator("data_dir", "log_dir", "run_dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        return _resolve_path(v)


class BatchConfig(_Section):
    """Batch jobs (jobs/batch/run.py <stage>): backfill, analyst tables, maintenance."""

    # Delta table maintenance (jobs/batch/run.py maintain): compact tables with at least this many
    # small files, VACUUM files unreferenced for longer than the retention (Delta's default is 7 days;
    # shorter breaks time travel and readers of old versions)
    compact_min_files: int = Field(default=16, ge=2)
    # a file below this size is small: only small files count towards compact_min_files, and OPTIMIZE
    # packs only them (Delta's own default, 1 GB, rewrote a backfill's ~66 MB files: 77 s at 20.7M rows)
    compact_small_file_mb: int = Field(default=32, ge=1)
    vacuum_retention_hours: int = Field(default=168, ge=1)
    # cohort retention: cohorts by week of the first visit, followed for this many weeks
    cohort_weeks: int = Field(default=12, ge=1, le=104)


class MlConfig(_Section):
    """Models (ml/): product demand, sale probability, customer lifetime value; MLflow."""

    # MLflow tracking server (scripts/mlflow.sh starts it locally); MLFLOW_TRACKING_URI wins if set
    tracking_uri: str = "http://127.0.0.1:5000"
    experiment_prefix: str = Field(default="shop", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    seed: int = 42
    # product x day panel: the most active products before the first backtest origin
    max_products: int = Field(default=1000, ge=10)
    demand_horizon_days: int = Field(default=7, ge=1, le=60)
    # rolling-origin backtest: this many consecutive test blocks of `test_block_days` at the end
    backtest_folds: int = Field(default=3, ge=1, le=20)
    test_block_days: int = Field(default=7, ge=1, le=60)
    top_k: int = Field(default=50, ge=1)
    # the panel models learn from the most recent N days of labelled rows (demand drifts with the
    # seasons: older days teach levels that no longer hold); 0 = all history
    train_window_days: int = Field(default=0, ge=0)
    gbt_max_iter: int = Field(default=40, ge=1, le=500)
    gbt_max_depth: int = Field(default=5, ge=1, le=15)
    gbt_min_instances_per_node: int = Field(default=20, ge=1)
    # the demand model's learner (ml/demand.py): XGBoost's Spark estimator with a Poisson objective,
    # or MLlib's GBTRegressor (gbt_max_iter, gbt_loss); both use gbt_max_depth (+1 for XGBoost) and
    # gbt_min_instances_per_node (XGBoost's min_child_weight)
    demand_learner: Literal["xgboost", "mllib_gbt"] = "xgboost"
    # the sale-probability classifier's learner (ml/sale_probability.py): XGBoost's Spark estimator
    # (binary:logistic, the same settings as the demand model's) or MLlib's GBTClassifier (gbt_max_iter)
    sale_learner: Literal["xgboost", "mllib_gbt"] = "xgboost"
    xgb_rounds: int = Field(default=300, ge=1, le=5000)
    # XGBoost training tasks (barrier mode: needs as many free task slots)
    xgb_workers: int = Field(default=1, ge=1)
    # "absolute" fits the median of next week's units, which is what WAPE rewards on sparse counts
    # (docs/batch.md, "Demand: the classical peers, and how low WAPE can go"); "squared" fits the mean
    gbt_loss: Literal["absolute", "squared"] = "absolute"
    # classical peers of the demand model in the backtest (ml/peers.py): any of CrostonSBA,
    # CrostonOptimized, ADIDA, IMAPA, TSB, ETS; empty = none (the champion is then the MLlib model's)
    peers: tuple[Literal["CrostonSBA", "CrostonOptimized", "ADIDA", "IMAPA", "TSB", "ETS"], ...] = (
        "CrostonSBA", "CrostonOptimized", "ADIDA", "IMAPA", "TSB", "ETS")
    # processes fitting the peers (statsforecast n_jobs; ETS refits per product and day): 0 = every
    # core of the machine the job runs on (its driver on Dataproc)
    peer_jobs: int = Field(default=0, ge=0)
    # customer lifetime value: spend over the next N days after the calibration cut-off
    clv_horizon_days: int = Field(default=90, ge=7, le=365)
    # share of customers held out (by a hash of the user id) to evaluate the CLV models
    clv_holdout_share: float = Field(default=0.3, gt=0, lt=1)
    # What the models may learn from (ml/history.py, checked before the feature tables are built).
    # The history must be one stretch: more than `max_gap_days` days in a row without events (a day
    # with fewer than `min_day_share` x the median day's events counts as without) splits it, and a
    # split history stops the chain with one line. `history_from` / `history_until` (YYYY-MM-DD)
    # choose the stretch on purpose (e.g. the backfilled months of a lake that also holds live data).
    max_gap_days: int = Field(default=2, ge=0)
    min_day_share: float = Field(default=0.02, ge=0, lt=1)
    # each backtest fold (test block + label horizon) must hold at least this share of the events
    # its days would hold at the history's average rate, or the fold would score next to nothing
    min_fold_share: float = Field(default=0.25, ge=0, le=1)
    history_from: date | None = None
    history_until: date | None = None

    @model_validator(mode="after")
    def _history_range(self) -> MlConfig:
        if self.history_from and self.history_until and self.history_from > self.history_until:
            raise ValueError(f"history_from {self.history_from} is after history_until {self.history_until}")
        return self

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v if "://" in v or v.startswith(("databricks", "sqlite")) else _resolve_path(v)


class Config(BaseSettings):
    # the environment source (_EnvOverrides) hands over names already lower-cased, so the match is exact
    # (Spark property names under spark.extra keep their case); values arrive parsed, no JSON decoding
    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix=ENV_PREFIX.lower(),
                                      env_nested_delimiter=_NESTED, case_sensitive=True, enable_decoding=False)

    env: str = "local"
    lake: LakeConfig = LakeConfig()
    kafka: KafkaConfig = KafkaConfig()
    source: SourceConfig = SourceConfig()
    spark: SparkConfig = SparkConfig()
    streaming: StreamingConfig = StreamingConfig()
    gold: GoldConfig = GoldConfig()
    sessions: SessionsConfig = SessionsConfig()
    retarget: RetargetConfig = RetargetConfig()
    paths: PathsConfig = PathsConfig()
    batch: BatchConfig = BatchConfig()
    ml: MlConfig = MlConfig()


def _read_text(path: Path) -> str | None:
    """Read a config file from disk, or from inside the versioned zip that ``scripts/submit.sh``
    ships to Dataproc with ``--py-files`` (there ``conf/`` sits beside ``lib/`` in the archive)."""
    if path.is_file():
        return path.read_text()
    for parent in path.parents:
        if parent.is_file() and zipfile.is_zipfile(parent):
            member = path.relative_to(parent).as_posix()
            with zipfile.ZipFile(parent) as zf:
                try:
                    return zf.read(member).decode()
                except KeyError:
                    return None
    return None


def read_conf_file(name: str) -> str | None:
    """The text of ``conf/<name>`` (also from inside the release zip on Dataproc), or None."""
    return _read_text(CONF_DIR / name)


def batch_chain_order() -> dict[str, list[str]]:
    """``conf/batch_chain.yaml``: ``stages`` (every stage of ``jobs/batch/run.py``, in order) and ``nightly``
    (the nightly chain on Google Cloud) — the one reader of that file, without Spark (lib/batch/chain.py
    and lib/cloud/gcp.py take it from here; Terraform reads the file itself)."""
    text = read_conf_file("batch_chain.yaml")
    if text is None:
        raise ConfigError("config error: missing conf/batch_chain.yaml (the batch chain's order)")
    return yaml.safe_load(text)


def _conf_path(env: str) -> Path:
    if env.endswith((".yaml", ".yml")):
        return Path(env)
    if not env.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"config error: environment name {env!r} is not a plain name")
    return CONF_DIR / f"{env}.yaml"


class _EnvOverrides(EnvSettingsSource):
    """``SHOP__A__B=v`` variables of ``environ`` (not necessarily ``os.environ``) as pydantic-settings'
    environment source: names are matched case-insensitively, values parsed as YAML scalars."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.origins: dict[str, str] = {}  # "kafka.partitions" -> "SHOP__KAFKA__PARTITIONS"
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, Any]:
        found: dict[str, Any] = {}
        for name, raw in sorted(self._environ.items()):
            if not name.upper().startswith(ENV_PREFIX):
                continue
            parts = name[len(ENV_PREFIX):].split(_NESTED)
            keys = [k.lower() for k in parts]
            if keys[:2] == ["spark", "extra"]:  # Spark property names are case-sensitive
                keys = keys[:2] + parts[2:]
            if not all(keys):
                raise ConfigError(f"config error: malformed override variable {name}")
            try:
                value = yaml.safe_load(raw) if raw != "" else ""
            except (yaml.YAMLError, ValueError):  # ValueError: a YAML date that is no date (2020-02-30)
                value = raw
            if keys[0] not in self.settings_cls.model_fields:  # pydantic-settings would skip it silently
                shown = f" (got {value!r})" if len(keys) == 1 else ""
                raise ConfigError(f"config error: {keys[0]}: unknown setting{shown} from {name}")
            found[self.env_prefix + _NESTED.join(keys)] = value
            self.origins[".".join(keys)] = name
        return found


def _format_error(err: ValidationError, sources: dict[str, str]) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown setting"
    value = first.get("input")
    where = sources.get(loc, "")
    shown = "" if isinstance(value, dict) or repr(value) in msg else f" (got {value!r})"
    more = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    return f"config error: {loc}: {msg}{shown}{where}{more}"


def load_config(env: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``conf/<env>.yaml`` with environment overrides; raise ConfigError with one line."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("SHOP_ENV") or "local"
    path = _conf_path(env)
    text = _read_text(path)
    if text is None:
        raise ConfigError(f"config error: no config file {path} for environment {env!r}")
    try:
        data = yaml.safe_load(text) or {}
    except ValueError as exc:  # a YAML date that is no date, e.g. 2020-02-30
        raise ConfigError(f"config error: {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config error: {path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path}: top level must be a mapping")
    data.setdefault("env", path.stem)
    overrides = _EnvOverrides(Config, environ)
    sources = {loc: f" from {name}" for loc, name in overrides.origins.items()}
    try:  # the environment first: it wins over the file (pydantic-settings merges the two)
        return Config(_build_sources=((overrides, InitSettingsSource(Config, data)), data))
    except ValidationError as err:
        raise ConfigError(_format_error(err, sources)) from None
