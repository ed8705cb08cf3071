# Managed Service for Apache Kafka: the event bus (Pub/Sub Lite is closed to new customers and
# turned down on 2027-01-31; Google names Managed Kafka as its successor — docs/decisions.md).
resource "google_managed_kafka_cluster" "events" {
  cluster_id = local.kafka_cluster_id
  location   = var.region

  capacity_config {
    vcpu_count   = var.kafka_vcpu_count
    memory_bytes = var.kafka_memory_gib * 1024 * 1024 * 1024
  }

  gcp_config {
    access_config {
      network_configs {
        subnet = google_compute_subnetwork.main.id
      }
    }
  }

  rebalance_config {
    mode = "AUTO_REBALANCE_ON_SCALE_UP"
  }

  depends_on = [google_project_service.apis]
}

resource "google_managed_kafka_topic" "events" {
  topic_id           = var.kafka_topic
  cluster            = google_managed_kafka_cluster.events.cluster_id
  location           = var.region
  partition_count    = var.kafka_partitions
  replication_factor = 3

  configs = {
    "cleanup.policy"      = "delete"
    "retention.ms"        = tostring(var.kafka_retention_hours * 3600 * 1000)
    "min.insync.replicas" = "2"
    "compression.type"    = "producer"
    # 16 MiB = lib/limits.py TOPIC_MAX_MESSAGE_BYTES: a 10 MB hostile message enters and is quarantined
    # (oversized_record) instead of being refused (docs/data.md "Hostile input")
    "max.message.bytes" = "16777216"
    # Message timestamps are the broker's receive time, not the producer's clock (= TOPIC_CONFIG of
    # lib/kafka_admin.py): the sessions query clamps event times to it, so a client with a fast clock
    # cannot move the watermark ahead (docs/decisions.md "Broker time"). Also what the Pub/Sub
    # connector's records get, whatever timestamp the connector sets.
    "message.timestamp.type" = "LogAppendTime"
  }
}

# Clock ticks of the streaming app's sessions query (lib/clock.py): advance event time while the shop
# is quiet. Tiny and short-lived.
resource "google_managed_kafka_topic" "clock" {
  topic_id           = "${var.kafka_topic}-clock"
  cluster            = google_managed_kafka_cluster.events.cluster_id
  location           = var.region
  partition_count    = 1
  replication_factor = 3

  configs = {
    "cleanup.policy"         = "delete"
    "retention.ms"           = tostring(24 * 3600 * 1000)
    "min.insync.replicas"    = "2"
    "message.timestamp.type" = "LogAppendTime" # as the events topic (the app creates it so locally)
  }
}

# ---------------------------------------------------------------------------------------------
# Optional ingestion path for shops whose front end publishes to Pub/Sub:
#   Pub/Sub topic -> subscription -> Kafka Connect (Pub/Sub source connector) -> Kafka `events`.
# The publisher sets the attribute `key` (= user_id); the connector turns it into the Kafka record
# key so a user's events stay in one partition, and the message body is copied byte-for-byte.
# ---------------------------------------------------------------------------------------------
resource "google_pubsub_topic" "ingest" {
  #checkov:skip=CKV_GCP_83:Transit buffer only (1-day retention, events land in Kafka and the lake); Google-managed encryption at rest, no customer-managed key.
  count = var.enable_pubsub_ingest ? 1 : 0

  name                       = "${local.prefix}-events-ingest"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "ingest_to_kafka" {
  count = var.enable_pubsub_ingest ? 1 : 0

  name                       = "${local.prefix}-events-to-kafka"
  topic                      = google_pubsub_topic.ingest[0].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  # Per-user ordering is kept end to end: publisher ordering key = user_id.
  enable_message_ordering = true

  expiration_policy {
    ttl = "" # never expire
  }
}

# The connector authenticates to Pub/Sub as the Managed Kafka service agent.
resource "google_pubsub_subscription_iam_member" "kafka_agent_subscriber" {
  count = var.enable_pubsub_ingest ? 1 : 0

  subscription = google_pubsub_subscription.ingest_to_kafka[0].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.managedkafka.email}"
}

resource "google_pubsub_subscription_iam_member" "kafka_agent_viewer" {
  count = var.enable_pubsub_ingest ? 1 : 0

  subscription = google_pubsub_subscription.ingest_to_kafka[0].name
  role         = "roles/pubsub.viewer"
  member       = "serviceAccount:${google_project_service_identity.managedkafka.email}"
}

resource "google_managed_kafka_connect_cluster" "ingest" {
  count = var.enable_pubsub_ingest ? 1 : 0

  connect_cluster_id = "${local.prefix}-connect"
  kafka_cluster      = google_managed_kafka_cluster.events.id
  location           = var.region

  capacity_config {
    vcpu_count   = var.connect_vcpu_count
    memory_bytes = var.connect_memory_gib * 1024 * 1024 * 1024
  }

  gcp_config {
    access_config {
      network_configs {
        primary_subnet = google_compute_subnetwork.main.id
      }
    }
  }
}

resource "google_managed_kafka_connector" "pubsub_source" {
  count = var.enable_pubsub_ingest ? 1 : 0

  connector_id    = "pubsub-to-${var.kafka_topic}"
  connect_cluster = google_managed_kafka_connect_cluster.ingest[0].connect_cluster_id
  location        = var.region

  configs = {
    "connector.class"          = "com.google.pubsub.kafka.source.CloudPubSubSourceConnector"
    "name"                     = "pubsub-to-${var.kafka_topic}"
    "tasks.max"                = tostring(min(var.kafka_partitions, 3))
    "kafka.topic"              = google_managed_kafka_topic.events.topic_id
    "cps.project"              = var.project_id
    "cps.subscription"         = google_pubsub_subscription.ingest_to_kafka[0].name
    "cps.streamingPull.enable" = "true"
    # Kafka key = the `key` attribute (user_id). With attributes present, headers mode keeps the
    # record value equal to the raw message body (the JSON event), not a struct.
    "kafka.key.attribute"  = "key"
    "kafka.record.headers" = "true"
    # The Kafka producer's own partitioner (murmur2 of the key): the same partition a native
    # Kafka producer (the replayer) picks for that user_id.
    "kafka.partition.scheme" = "kafka_partitioner"
    "key.converter"          = "org.apache.kafka.connect.storage.StringConverter"
    "value.converter"        = "org.apache.kafka.connect.converters.ByteArrayConverter"
  }

  task_restart_policy {
    minimum_backoff = "60s"
    maximum_backoff = "1800s"
  }
}
