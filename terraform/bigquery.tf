# BigQuery dataset of BigLake tables over the gold Delta tables, for Looker Studio and ad-hoc SQL.
# BigQuery reads the Delta log itself (source_format DELTA_LAKE) through a Cloud resource
# connection, so readers need no access to the bucket.

locals {
  # Every gold table the platform writes, by its folder name under lake/gold/ (tests/static checks
  # each one against lib/schema.py and lib/batch/analyst.py, and the other way round).
  gold_tables = [
    # streaming app, updated every micro-batch (lib/serving.py)
    "sales_per_minute", "sales_daily", "revenue_per_minute", "top_products",
    # nightly chain: analyst tables (lib/batch/analyst.py), scores (ml/scoring.py), uplift
    "daily_product_sales", "daily_brand_sales", "daily_category_sales", "funnel_daily",
    "carts_without_purchase_daily", "cohort_retention", "demand_forecast", "customer_value", "customer_segments",
    "retarget_uplift", "product_catalogue",
  ]
  biglake_tables = var.biglake_enabled ? (var.biglake_gold_tables != null ? var.biglake_gold_tables : local.gold_tables) : []
}

resource "google_bigquery_connection" "lake" {
  connection_id = "${local.prefix}-lake"
  location      = var.region
  friendly_name = "${local.prefix} lake (BigLake)"
  description   = "Reads gold Delta tables under ${local.lake_root}/gold/"
  cloud_resource {}

  depends_on = [google_project_service.apis]
}

# The connection's service account reads the gold layer only.
resource "google_storage_bucket_iam_member" "biglake_gold_reader" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_bigquery_connection.lake.cloud_resource[0].service_account_id}"

  condition {
    title       = "gold-only"
    description = "Objects under lake/gold/ and listings of that prefix"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/lake/gold/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"lake/gold/\")"
  }
}

resource "google_bigquery_dataset" "gold" {
  #checkov:skip=CKV_GCP_81:Holds only BigLake table definitions; the data stays in GCS with Google-managed encryption, a dataset CMEK would protect nothing.
  dataset_id                 = "${local.bq_prefix}_gold"
  friendly_name              = "${local.prefix} gold"
  description                = "BigLake tables over the gold Delta tables of the lake (read-only)."
  location                   = var.region
  delete_contents_on_destroy = !var.deletion_protection

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "gold" {
  #checkov:skip=CKV_GCP_80:External BigLake table: no data is stored in BigQuery, so a table CMEK does not apply.
  for_each = toset(local.biglake_tables)

  dataset_id          = google_bigquery_dataset.gold.dataset_id
  table_id            = each.value
  description         = "BigLake Delta table over ${local.lake_root}/gold/${each.value}"
  deletion_protection = var.deletion_protection

  external_data_configuration {
    source_format = "DELTA_LAKE"
    autodetect    = true
    connection_id = google_bigquery_connection.lake.name
    source_uris   = ["${local.lake_root}/gold/${each.value}"]
  }

  depends_on = [google_storage_bucket_iam_member.biglake_gold_reader]
}

# Read access: the dashboards' service account and the configured analyst groups.
resource "google_bigquery_dataset_iam_member" "readers" {
  for_each = toset(concat([local.sa_member["bq-reader"]], var.bigquery_reader_members))

  dataset_id = google_bigquery_dataset.gold.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = each.value
}

resource "google_project_iam_member" "bigquery_reader_jobs" {
  for_each = toset(var.bigquery_reader_members)

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}
