# Nightly batch chain: Cloud Scheduler -> Workflows -> Serverless for Apache Spark batches, in order.
# (Workflows rather than Cloud Composer: a linear chain of a few batches needs no Airflow
# environment, which would cost hundreds of dollars a month while idle — docs/decisions.md.)

locals {
  # Spark properties of every Serverless batch. Serverless has no YARN: driver environment
  # variables are set with spark.dataproc.driverEnv.*, executor ones with spark.executorEnv.*.
  # Keep in sync with scripts/submit.sh (batch), which builds the same set from flags/env.
  batch_properties = merge(
    { for k, v in local.shop_env : "spark.dataproc.driverEnv.${k}" => v },
    { for k, v in local.shop_env : "spark.executorEnv.${k}" => v },
    {
      # Python deps (pydantic, PyYAML, ...) extracted from the release's pydeps archive (#pydeps).
      "spark.dataproc.driverEnv.PYTHONPATH" = "./pydeps"
      "spark.executorEnv.PYTHONPATH"        = "./pydeps"
    },
    var.mlflow_image == "" ? {} : {
      "spark.dataproc.driverEnv.MLFLOW_TRACKING_URI" = google_cloud_run_v2_service.mlflow[0].uri
    },
  )
}

resource "google_workflows_workflow" "nightly" {
  name                = "${local.prefix}-nightly"
  region              = var.region
  description         = "Nightly batch chain: ${join(" -> ", local.batch_jobs)}"
  service_account     = google_service_account.sa["workflows"].id
  call_log_level      = "LOG_ERRORS_ONLY"
  deletion_protection = var.deletion_protection

  source_contents = templatefile("${path.module}/workflows/nightly.yaml.tftpl", {
    project                   = var.project_id
    region                    = var.region
    env                       = var.env
    workflow_name             = "${local.prefix}-nightly"
    artifacts_bucket          = google_storage_bucket.artifacts.name
    jobs_json                 = jsonencode(local.batch_jobs)
    properties_json           = jsonencode(local.batch_properties)
    runtime_version           = var.batch_runtime_version
    batch_service_account     = google_service_account.sa["batch"].email
    subnetwork                = google_compute_subnetwork.main.id
    batch_ttl                 = "${var.batch_timeout_minutes * 60}s"
    connector_timeout_seconds = var.batch_timeout_minutes * 60 + 600
  })

  depends_on = [
    google_project_iam_member.workload,
    google_service_account_iam_member.act_as,
  ]
}

resource "google_project_iam_member" "scheduler_invokes_workflows" {
  project = var.project_id
  role    = "roles/workflows.invoker"
  member  = local.sa_member["scheduler"]
}

resource "google_cloud_scheduler_job" "nightly" {
  name             = "${local.prefix}-nightly"
  region           = var.region
  description      = "Starts the nightly batch chain workflow"
  schedule         = var.batch_schedule
  time_zone        = var.batch_time_zone
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://workflowexecutions.googleapis.com/v1/${google_workflows_workflow.nightly.id}/executions"
    body = base64encode(jsonencode({
      argument     = jsonencode({})
      callLogLevel = "LOG_ERRORS_ONLY"
    }))
    headers = {
      "Content-Type" = "application/json"
    }

    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_iam_member.scheduler_invokes_workflows]
}
