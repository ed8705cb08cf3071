"""Streaming sources: Kafka (default; local Apache Kafka or Google Managed Service for Apache Kafka)
and the deprecated Pub/Sub Lite option, which the app refuses at start (no Spark 4 connector exists).

Every source yields the same raw columns, so bronze does not care where events came from:
``key`` (string), ``value`` (string, the JSON event), ``topic``, ``partition``, ``offset``,
``timestamp`` (the broker's message timestamp).
"""

from __future__ import annotations

import warnings

from lib.config import Config, ConfigError

# Google's login callback handler for Managed Kafka (jar: com.google.cloud.hosted.kafka:
# managed-kafka-auth-login-handler, on driver and executor classpaths; IAM roles/managedkafka.client).
GCP_LOGIN_HANDLER = "com.google.cloud.hosted.kafka.auth.GcpLoginCallbackHandler"
OAUTHBEARER_JAAS = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"

PUBSUBLITE_TURNDOWN = "2027-01-31"


def kafka_client_options(cfg: Config) -> dict[str, str]:
    """Kafka client settings (without Spark's ``kafka.`` prefix) for the configured auth."""
    opts = {"bootstrap.servers": cfg.kafka.bootstrap_servers}
    if cfg.kafka.auth == "gcp_oauth":
        opts.update({
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.login.callback.handler.class": GCP_LOGIN_HANDLER,
            "sasl.jaas.config": OAUTHBEARER_JAAS,
        })
    return opts


def kafka_reader_options(cfg: Config, extra_topics: tuple[str, ...] = ()) -> dict[str, str]:
    """Options for ``spark.readStream.format("kafka")`` (the events topic, plus ``extra_topics``)."""
    opts = {f"kafka.{k}": v for k, v in kafka_client_options(cfg).items()}
    opts.update({
        "subscribe": ",".join((cfg.kafka.topic, *extra_topics)),
        "startingOffsets": cfg.kafka.starting_offsets,
        "failOnDataLoss": str(cfg.kafka.fail_on_data_loss).lower(),
        "includeHeaders": "false",
    })
    if cfg.kafka.max_offsets_per_trigger:
        opts["maxOffsetsPerTrigger"] = str(cfg.kafka.max_offsets_per_trigger)
    return opts


def pubsublite_reader_options(cfg: Config) -> dict[str, str]:
    """DEPRECATED: options for the Pub/Sub Lite Spark connector (``format("pubsublite")``).

    Pub/Sub Lite is closed to new customers since 2024-09-24 and turned down on 2027-01-31;
    Google names Managed Service for Apache Kafka as its successor. Only the options are built here;
    the streaming app refuses the source at start (:func:`check_source`).
    """
    warnings.warn(
        f"source.kind=pubsublite is deprecated: Pub/Sub Lite is turned down on {PUBSUBLITE_TURNDOWN}; "
        "use source.kind=kafka with Managed Service for Apache Kafka",
        DeprecationWarning,
        stacklevel=2,
    )
    p = cfg.source.pubsublite
    missing = [k for k in ("project", "location", "subscription") if not getattr(p, k)]
    if missing:
        raise ConfigError(f"config error: source.pubsublite.{missing[0]}: required when source.kind=pubsublite")
    return {
        "pubsublite.subscription":
            f"projects/{p.project}/locations/{p.location}/subscriptions/{p.subscription}",
    }


def check_source(cfg: Config) -> None:
    """Refuse, at start and in one line, a source the app cannot run on.

    ``pubsublite``: no Pub/Sub Lite connector exists for Spark 4 / Scala 2.13 (the last
    ``pubsublite-spark-sql-streaming`` release targets Spark 3 / Scala 2.12), and the service is
    turned down on 2027-01-31. An app that started on it would process nothing (no clock ticks, no
    sessions), so it does not start.
    """
    if cfg.source.kind == "pubsublite":
        raise ConfigError(
            f"config error: source.kind=pubsublite cannot run: Pub/Sub Lite has no Spark 4 connector and is turned "
            f"down on {PUBSUBLITE_TURNDOWN}; use source.kind=kafka with Managed Service for Apache Kafka (a Pub/Sub "
            "topic is forwarded into it by Managed Kafka Connect, see docs/deploy.md)")


def read_events_stream(spark, cfg: Config, extra_topics: tuple[str, ...] = ()):
    """The raw event stream with the common raw columns (see module doc).

    ``extra_topics``: more Kafka topics in the same stream (the sessions query reads the clock topic
    beside the events; rows tell them apart by ``topic``).
    """
    from pyspark.sql import functions as F  # deferred: tools/replay imports this module and runs without pyspark

    check_source(cfg)
    raw = spark.readStream.format("kafka").options(**kafka_reader_options(cfg, extra_topics)).load()
    return raw.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        "timestamp",
    )
