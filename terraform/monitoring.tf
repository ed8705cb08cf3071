# Alerting: the streaming job stalls / stops, a job fails on the streaming cluster, a Serverless
# batch fails, the nightly chain fails. Every policy notifies var.notification_channels plus the
# optional e-mail channel.
#
# Why no Kafka consumer-lag metric: Spark's Kafka source keeps its offsets in the streaming
# checkpoint and never commits them to a Kafka consumer group, so Managed Kafka's consumer-group
# lag would always look empty. "No micro-batch progress for N minutes" catches both a dead and a
# hopelessly lagging query (a query that falls behind still reports progress, but a stuck one
# does not); data freshness per table is reported by the pipeline in lake/ops/.

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "${local.prefix} on-call e-mail"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.apis]
}

locals {
  streaming_cluster_filter = "resource.type=\"cloud_dataproc_cluster\" AND resource.labels.cluster_name=\"${google_dataproc_cluster.streaming.name}\""
}

# The streaming app logs one "shop.progress <query> batch <n>: ..." line per micro-batch of each query
# (lib/streaming.log_progress, logger "shop.progress" at INFO on the driver's stdout) — not Spark's own
# "Streaming query made progress" INFO line, which lib/spark.build_session's WARN log level keeps out of
# the log. The driver runs in a YARN container (cluster deploy mode) whose logs reach Cloud Logging
# through dataproc:dataproc.logging.stackdriver.job.yarn.container.enable (terraform/dataproc.tf). In a
# quiet shop the sessions query still has a batch a minute (the clock's heartbeat ticks, lib/clock.py).
resource "google_logging_metric" "streaming_progress" {
  name        = "${local.prefix}-streaming-progress"
  description = "Micro-batches completed by the streaming job (its 'shop.progress ... batch N' log lines)."
  filter      = "${local.streaming_cluster_filter} AND \"shop.progress\" AND \" batch \""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "streaming_stalled" {
  display_name          = "${local.prefix}: streaming job made no progress for ${var.streaming_stall_minutes} min"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  conditions {
    display_name = "No micro-batch progress"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.streaming_progress.name}\" AND resource.type=\"cloud_dataproc_cluster\""
      duration = "${var.streaming_stall_minutes * 60}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The streaming job on Dataproc cluster `${google_dataproc_cluster.streaming.name}` has logged no micro-batch progress. Carts are not being recovered and live sales are stale. Check `gcloud dataproc jobs list --cluster=${google_dataproc_cluster.streaming.name} --region=${var.region} --state-filter=active`, the driver logs, then re-run `scripts/submit.sh streaming` (docs/deploy.md, Operations)."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "streaming_not_running" {
  display_name          = "${local.prefix}: streaming job is not running"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.notification_channels

  conditions {
    display_name = "No running job on the streaming cluster"
    condition_threshold {
      filter          = "metric.type=\"dataproc.googleapis.com/cluster/job/running_count\" AND ${local.streaming_cluster_filter}"
      comparison      = "COMPARISON_LT"
      threshold_value = 1
      duration        = "600s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "No job is running on `${google_dataproc_cluster.streaming.name}`. The restartable job exceeded its failures per hour or was cancelled. Resubmit with `scripts/submit.sh streaming`."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "cluster_job_failed" {
  display_name          = "${local.prefix}: a job failed on the streaming cluster"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Failed Dataproc jobs"
    condition_threshold {
      filter          = "metric.type=\"dataproc.googleapis.com/cluster/job/failed_count\" AND ${local.streaming_cluster_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Dataproc job failed on `${google_dataproc_cluster.streaming.name}` (the streaming job restarts by itself up to its max failures per hour). See the job's driver output in the console."
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

resource "google_monitoring_alert_policy" "batch_failed" {
  display_name          = "${local.prefix}: a Serverless batch logged an error"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Serverless batch error log"
    condition_matched_log {
      filter = "resource.type=\"cloud_dataproc_batch\" AND severity>=ERROR"
      label_extractors = {
        batch_id = "EXTRACT(resource.labels.batch_id)"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Serverless for Apache Spark batch logged an ERROR (batch id in the incident labels). `gcloud dataproc batches describe BATCH_ID --region=${var.region}`."
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "nightly_failed" {
  display_name          = "${local.prefix}: nightly batch chain failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Workflow execution FAILED"
    condition_threshold {
      filter          = "metric.type=\"workflows.googleapis.com/finished_execution_count\" AND resource.type=\"workflows.googleapis.com/Workflow\" AND resource.labels.workflow_id=\"${google_workflows_workflow.nightly.name}\" AND metric.labels.status=\"FAILED\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The nightly chain `${google_workflows_workflow.nightly.name}` failed: gold tables, forecasts or CLV scores are stale. `gcloud workflows executions list ${google_workflows_workflow.nightly.name} --location=${var.region}`; re-run one step with `--data='{\"jobs\": [\"<job>\"]}'`."
  }

  alert_strategy {
    auto_close = "86400s"
  }
}
