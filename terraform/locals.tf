locals {
  prefix = "${var.name_prefix}-${var.env}"
  # BigQuery ids allow no hyphens.
  bq_prefix = replace(local.prefix, "-", "_")

  labels = merge(var.labels, {
    app        = "shop-platform"
    env        = var.env
    managed-by = "terraform"
  })

  # Buckets: globally unique names, derived from the project id.
  bucket_names = {
    lake        = "${var.project_id}-${local.prefix}-lake"
    checkpoints = "${var.project_id}-${local.prefix}-checkpoints"
    artifacts   = "${var.project_id}-${local.prefix}-artifacts"
    mlflow      = "${var.project_id}-${local.prefix}-mlflow"
    dataproc    = "${var.project_id}-${local.prefix}-dataproc"
    access_logs = "${var.project_id}-${local.prefix}-access-logs"
  }

  # The nightly chain: var.batch_jobs, else the list `make batch` shares (conf/batch_chain.yaml).
  batch_jobs = var.batch_jobs != null ? var.batch_jobs : yamldecode(file("${path.module}/../conf/batch_chain.yaml")).nightly

  lake_root        = "gs://${local.bucket_names.lake}/lake"
  checkpoints_root = "gs://${local.bucket_names.checkpoints}/checkpoints"
  landing_root     = "gs://${local.bucket_names.lake}/landing"

  kafka_cluster_id = "${local.prefix}-kafka"
  # Managed Kafka bootstrap address (SASL_SSL, OAUTHBEARER via Google's login callback handler).
  kafka_bootstrap = "bootstrap.${local.kafka_cluster_id}.${var.region}.managedkafka.${var.project_id}.cloud.goog:9092"

  # Python packages for the streaming cluster: requirements/dataproc.txt when the repository has one
  # (then scripts/submit.sh builds the Serverless dependency archive from the same file), else the variable.
  dataproc_requirements_file = "${path.module}/../requirements/dataproc.txt"
  dataproc_pip_packages = fileexists(local.dataproc_requirements_file) ? [
    for line in split("\n", file(local.dataproc_requirements_file)) : trimspace(line)
    if trimspace(line) != "" && !startswith(trimspace(line), "#")
  ] : var.dataproc_pip_packages

  notification_channels = concat(
    var.notification_channels,
    [for c in google_monitoring_notification_channel.email : c.id],
  )

  # Secret resource ids handed to jobs as environment variables: the jobs read the *values* from
  # Secret Manager at run time with their own service account; values never pass through Terraform,
  # job properties or logs.
  secret_env = {
    SENDGRID_API_KEY_SECRET        = "${google_secret_manager_secret.app["sendgrid-api-key"].id}/versions/latest"
    UNSUBSCRIBE_SIGNING_KEY_SECRET = "${google_secret_manager_secret.app["unsubscribe-signing-key"].id}/versions/latest"
  }

  # SHOP__<SECTION>__<KEY> overrides of conf/gcp.yaml (see lib/config.py) shared by every job.
  shop_env = {
    SHOP__LAKE__ROOT               = local.lake_root
    SHOP__LAKE__CHECKPOINTS        = local.checkpoints_root
    SHOP__KAFKA__BOOTSTRAP_SERVERS = local.kafka_bootstrap
    SHOP__KAFKA__TOPIC             = var.kafka_topic
    SHOP__SESSIONS__CLOCK_TOPIC    = google_managed_kafka_topic.clock.topic_id
    SHOP__PATHS__DATA_DIR          = local.landing_root
  }
}
