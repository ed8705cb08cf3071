# One service account per workload, each with only what that workload touches.
#   streaming  - Dataproc cluster VMs running the long-lived streaming job (+ e-mail dispatcher)
#   batch      - Serverless for Apache Spark batches (gold tables, training, scoring, maintenance)
#   workflows  - the Workflows execution that submits the nightly batches in order
#   scheduler  - Cloud Scheduler's identity that starts the workflow
#   mlflow     - the MLflow tracking server on Cloud Run
#   bq-reader  - dashboards / Looker Studio data source: read-only BigQuery over gold
#   dashboard  - the business dashboard on Cloud Run (behind IAP): reads gold, ops, quarantine, decisions, offers
#   unsubscribe - the public unsubscribe page on Cloud Run: appends retarget/unsubscribes, reads retarget/offers
#                 (the offer-code check), nothing else
#   deployer   - GitHub Actions (via Workload Identity Federation): terraform apply + submit
locals {
  service_accounts = {
    streaming   = "Streaming job on the Dataproc cluster"
    batch       = "Serverless Spark batch jobs"
    workflows   = "Nightly batch chain (Workflows)"
    scheduler   = "Cloud Scheduler trigger of the nightly chain"
    mlflow      = "MLflow tracking server (Cloud Run)"
    bq-reader   = "Read-only BigQuery access to gold tables (dashboards, Looker Studio)"
    dashboard   = "Business dashboard (Cloud Run, behind IAP): reads the lake"
    unsubscribe = "Public unsubscribe page (Cloud Run): writes retarget/unsubscribes only"
    deployer    = "CI/CD deployer (GitHub Actions via WIF)"
  }
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${local.prefix}-${each.key}"
  display_name = "${local.prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}

locals {
  sa_member = { for k, v in google_service_account.sa : k => "serviceAccount:${v.email}" }
}

# ---- project-level roles (only those that have no narrower resource to bind on) --------------
locals {
  project_roles = {
    # Dataproc VM/batch identity (the documented minimum for a Dataproc worker / Serverless SA).
    "streaming-dataproc-worker" = { sa = "streaming", role = "roles/dataproc.worker" }
    "batch-dataproc-worker"     = { sa = "batch", role = "roles/dataproc.worker" }
    # Consume/produce on Managed Kafka (SASL/OAUTHBEARER with the SA's token).
    "streaming-kafka-client" = { sa = "streaming", role = "roles/managedkafka.client" }
    # Submitting Serverless batches.
    "workflows-dataproc-editor" = { sa = "workflows", role = "roles/dataproc.editor" }
    "workflows-log-writer"      = { sa = "workflows", role = "roles/logging.logWriter" }
    # Running BigQuery query jobs (billing) for dashboards.
    "bq-reader-job-user" = { sa = "bq-reader", role = "roles/bigquery.jobUser" }
    # Cloud Run service: logs and metrics.
    "mlflow-log-writer"    = { sa = "mlflow", role = "roles/logging.logWriter" }
    "mlflow-metric-writer" = { sa = "mlflow", role = "roles/monitoring.metricWriter" }
  }
}

resource "google_project_iam_member" "workload" {
  for_each = local.project_roles

  project = var.project_id
  role    = each.value.role
  member  = local.sa_member[each.value.sa]
}

# ---- bucket-level roles ------------------------------------------------------------------------
locals {
  bucket_roles = {
    "streaming-lake"        = { sa = "streaming", bucket = "lake", role = "roles/storage.objectAdmin" }
    "streaming-checkpoints" = { sa = "streaming", bucket = "checkpoints", role = "roles/storage.objectAdmin" }
    "streaming-artifacts"   = { sa = "streaming", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "streaming-dataproc"    = { sa = "streaming", bucket = "dataproc", role = "roles/storage.objectAdmin" }
    "batch-lake"            = { sa = "batch", bucket = "lake", role = "roles/storage.objectAdmin" }
    "batch-artifacts"       = { sa = "batch", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "batch-dataproc"        = { sa = "batch", bucket = "dataproc", role = "roles/storage.objectAdmin" }
    "workflows-artifacts"   = { sa = "workflows", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "mlflow-artifacts"      = { sa = "mlflow", bucket = "mlflow", role = "roles/storage.objectAdmin" }
    "deployer-artifacts"    = { sa = "deployer", bucket = "artifacts", role = "roles/storage.objectAdmin" }
    "deployer-dataproc"     = { sa = "deployer", bucket = "dataproc", role = "roles/storage.objectAdmin" }
  }
  buckets = {
    lake        = google_storage_bucket.lake.name
    checkpoints = google_storage_bucket.checkpoints.name
    artifacts   = google_storage_bucket.artifacts.name
    mlflow      = google_storage_bucket.mlflow.name
    dataproc    = google_storage_bucket.dataproc.name
  }
}

resource "google_storage_bucket_iam_member" "workload" {
  for_each = local.bucket_roles

  bucket = local.buckets[each.value.bucket]
  role   = each.value.role
  member = local.sa_member[each.value.sa]
}

# Dashboards read only the gold layer of the lake directly (deltalake package, no Spark).
resource "google_storage_bucket_iam_member" "bq_reader_gold" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.sa_member["bq-reader"]

  condition {
    title       = "gold-only"
    description = "Objects under lake/gold/ and listings of that prefix"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/lake/gold/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"lake/gold/\")"
  }
}

# ---- who may act as whom ------------------------------------------------------------------------
locals {
  act_as = {
    # Workflows submits batches that run as the batch SA.
    "workflows-as-batch" = { sa = "batch", member = local.sa_member["workflows"] }
    # The deployer creates the cluster, Cloud Run service, workflow and scheduler job with these identities
    # and submits streaming/batch jobs (scripts/submit.sh).
    "deployer-as-streaming"   = { sa = "streaming", member = local.sa_member["deployer"] }
    "deployer-as-batch"       = { sa = "batch", member = local.sa_member["deployer"] }
    "deployer-as-workflows"   = { sa = "workflows", member = local.sa_member["deployer"] }
    "deployer-as-scheduler"   = { sa = "scheduler", member = local.sa_member["deployer"] }
    "deployer-as-mlflow"      = { sa = "mlflow", member = local.sa_member["deployer"] }
    "deployer-as-dashboard"   = { sa = "dashboard", member = local.sa_member["deployer"] }
    "deployer-as-unsubscribe" = { sa = "unsubscribe", member = local.sa_member["deployer"] }
  }
}

resource "google_service_account_iam_member" "act_as" {
  for_each = local.act_as

  service_account_id = google_service_account.sa[each.value.sa].name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value.member
}

# ---- the CI/CD deployer ---------------------------------------------------------------------------
# Terraform manages every resource above, so the deployer administers those services. It gets no
# basic role (owner/editor), cannot grant itself (or anyone) owner or any role outside
# local.deployer_grantable_project_roles, cannot read the application secrets' values, cannot change
# who may impersonate it, and can act as / administer only the stack's own workload accounts.
# The grants that would let it do more (custom role, WIF, the deployer's own roles, who may read a
# secret) are applied by a person with owner rights (docs/deploy.md "The deployer's roles").
locals {
  deployer_roles = {
    "roles/artifactregistry.admin"          = "image repository of the MLflow/dashboard images (apis.tf, mlflow.tf)"
    "roles/bigquery.admin"                  = "BigLake connection, gold dataset, tables and dataset IAM (bigquery.tf)"
    "roles/cloudscheduler.admin"            = "nightly trigger of the batch chain (scheduler.tf)"
    "roles/cloudsql.admin"                  = "MLflow Postgres instance, database and user (mlflow.tf)"
    "roles/compute.networkAdmin"            = "VPC, subnet, router, Cloud NAT, private service range (network.tf)"
    "roles/compute.securityAdmin"           = "firewall rules of the VPC (network.tf)"
    "roles/dataproc.editor"                 = "streaming cluster and job/batch submission (dataproc.tf, scripts/submit.sh)"
    "roles/iam.workloadIdentityPoolViewer"  = "read the WIF pool/provider at plan; changing them is a person's apply (wif.tf)"
    "roles/iam.serviceAccountCreator"       = "create the stack's service accounts; no IAM rights on them (per-account grants below)"
    "roles/iap.admin"                       = "who may pass IAP to the dashboard (dashboard.tf)"
    "roles/logging.configWriter"            = "log-based metrics and sinks (monitoring.tf)"
    "roles/managedkafka.admin"              = "Kafka cluster, topics, Connect cluster (kafka.tf)"
    "roles/monitoring.editor"               = "alert policies, notification channels, dashboards (monitoring.tf)"
    "roles/pubsub.admin"                    = "ingest topic/subscription and their IAM (kafka.tf)"
    "roles/run.admin"                       = "MLflow, dashboard and unsubscribe services and their invoker IAM (mlflow.tf, dashboard.tf)"
    "roles/servicenetworking.networksAdmin" = "private services access for Cloud SQL (network.tf)"
    "roles/serviceusage.serviceUsageAdmin"  = "enable the APIs of apis.tf"
    "roles/storage.admin"                   = "lake/checkpoint/artifact buckets, lifecycle and bucket IAM; the state bucket (storage.tf)"
    "roles/workflows.admin"                 = "the nightly Workflows definition (workflows/)"
  }
  # Project-level roles the stack grants to its workload accounts and readers (iam.tf project_roles,
  # bigquery.tf bigquery_reader_jobs, scheduler.tf): the only roles the deployer may grant or revoke
  # on the project. Nothing here grants IAM, impersonation or secret access (tests/static checks it).
  deployer_grantable_project_roles = [
    "roles/bigquery.jobUser",
    "roles/dataproc.editor",
    "roles/dataproc.worker",
    "roles/logging.logWriter",
    "roles/managedkafka.client",
    "roles/monitoring.metricWriter",
    "roles/workflows.invoker",
  ]
  # Accounts the deployer administers (update, delete, their IAM: the act_as grants above). Not
  # itself: it cannot widen who may impersonate it.
  deployer_managed_accounts = toset([for k in keys(local.service_accounts) : k if k != "deployer"])
}

resource "google_project_iam_member" "deployer" {
  #checkov:skip=CKV_GCP_42:The CD deployer applies this Terraform stack and must administer the services it creates; it has no basic role, no unconditional IAM admin role and is only reachable through WIF from main in the protected GitHub environment.
  #checkov:skip=CKV_GCP_49:roles/iam.serviceAccountCreator only creates accounts; it grants no impersonation (the deployer acts only as the stack's accounts, per-account grants above).
  for_each = local.deployer_roles

  project = var.project_id
  role    = each.key
  member  = local.sa_member["deployer"]
}

# Project IAM, limited to the roles the stack hands out: without this condition
# roles/resourcemanager.projectIamAdmin could grant roles/owner to the deployer itself.
resource "google_project_iam_member" "deployer_project_iam_limited" {
  #checkov:skip=CKV_GCP_42:Conditional: only the roles of local.deployer_grantable_project_roles may be granted or revoked (iam.googleapis.com/modifiedGrantsByRole).
  project = var.project_id
  role    = "roles/resourcemanager.projectIamAdmin"
  member  = local.sa_member["deployer"]

  condition {
    title       = "stack-workload-roles-only"
    description = "May grant/revoke only the project roles the stack gives its workload accounts"
    expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(${jsonencode(local.deployer_grantable_project_roles)})"
  }
}

# Secret Manager without reading values and without changing who may read them: create, update,
# delete secrets and manage versions' state. No secretmanager.versions.access, no setIamPolicy.
resource "google_project_iam_custom_role" "deployer_secrets" {
  role_id     = "${replace(local.prefix, "-", "_")}_deployer_secrets"
  title       = "${local.prefix} deployer: secrets without their values"
  description = "Create/update/delete the stack's secrets and manage version state; never read a value or change secret IAM."
  permissions = [
    "secretmanager.locations.get",
    "secretmanager.locations.list",
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.list",
    "secretmanager.secrets.update",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
  ]
}

resource "google_project_iam_member" "deployer_secrets" {
  project = var.project_id
  role    = google_project_iam_custom_role.deployer_secrets.id
  member  = local.sa_member["deployer"]
}

# The one secret value the deployer reads: the MLflow database password, which Terraform itself
# generates and keeps in its state (refreshing google_secret_manager_secret_version reads it).
resource "google_secret_manager_secret_iam_member" "deployer_mlflow_db_password" {
  secret_id = google_secret_manager_secret.mlflow_db_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa_member["deployer"]
}

# Update/delete the stack's workload accounts and set their IAM (the act_as grants above), per
# account: no IAM rights on any other service account of the project, nor on the deployer itself.
resource "google_service_account_iam_member" "deployer_manages" {
  for_each = local.deployer_managed_accounts

  service_account_id = google_service_account.sa[each.key].name
  role               = "roles/iam.serviceAccountAdmin"
  member             = local.sa_member["deployer"]
}
