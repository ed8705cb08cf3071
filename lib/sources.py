"""Streaming sources: Kafka (default; local Apache Kafka or Google Managed Service for Apache Kafka)
and the deprecated Pub/Sub Lite option.

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
    Google names Managed Service for Apache Kafka as its successor. Only the options are built here.
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


def read_events_stream(spark, cfg: Config, extra_topics: tuple[str, ...] = ()):
    """The raw event stream with the common raw columns (see module doc).

    ``extra_topics``: more Kafka topics in the same stream (the sessions query reads the clock topic
    beside the events; rows tell them apart by ``topic``). Pub/Sub Lite has no such thing.
    """
    from pyspark.sql import functions as F

    if cfg.source.kind == "pubsublite":
        raw = spark.readStream.format("pubsublite").options(**pubsublite_reader_options(cfg)).load()
        return raw.select(
            F.col("key").cast("string").alias("key"),
            F.col("data").cast("string").alias("value"),
            F.lit(cfg.source.pubsublite.subscription).alias("topic"),
            F.col("partition").cast("int").alias("partition"),
            F.col("offset").cast("long").alias("offset"),
            F.col("publish_timestamp").alias("timestamp"),
        )
    raw = spark.readStream.format("kafka").options(**kafka_reader_options(cfg, extra_topics)).load()
    return raw.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        "timestamp",
    )
