# ---------------------------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------------------------
variable "project_id" {
  description = "GCP project that hosts one environment of the platform (one project per environment)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region for every regional resource (Managed Kafka, Dataproc, Cloud Run, Cloud SQL, buckets, BigQuery)."
  type        = string
  default     = "europe-west1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like europe-west1 or us-central1 (a region, not a zone)."
  }
}

variable "env" {
  description = "Environment name; also the GitHub environment allowed to deploy into this project."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.env)
    error_message = "env must be dev or prod."
  }
}

variable "name_prefix" {
  description = "Short prefix for resource names (<prefix>-<env>-...)."
  type        = string
  default     = "shop"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.name_prefix))
    error_message = "name_prefix must be 2-10 lowercase letters/digits, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels put on every resource (merged with app/env/managed-by)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys/values must be lowercase letters, digits, '_' or '-' (keys start with a letter, max 63 chars)."
  }
}

variable "deletion_protection" {
  description = "Protect stateful resources (Cloud SQL, Cloud Run, Workflows, BigQuery tables) and keep non-empty buckets on destroy. true for prod."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------
variable "subnet_cidr" {
  description = "Primary range of the single regional subnet used by Dataproc, Serverless batches, Managed Kafka and Kafka Connect (Connect needs at least a /22)."
  type        = string
  default     = "10.10.0.0/20"
  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && tonumber(split("/", var.subnet_cidr)[1]) <= 22
    error_message = "subnet_cidr must be a valid IPv4 CIDR of size /22 or larger (Kafka Connect's primary subnet needs >= /22)."
  }
}

variable "private_service_access_prefix_length" {
  description = "Prefix length of the range reserved for Private Service Access (Cloud SQL private IP)."
  type        = number
  default     = 20
  validation {
    condition     = var.private_service_access_prefix_length >= 16 && var.private_service_access_prefix_length <= 24
    error_message = "private_service_access_prefix_length must be between 16 and 24."
  }
}

# ---------------------------------------------------------------------------------------------
# Lake and archive
# ---------------------------------------------------------------------------------------------
variable "bronze_nearline_after_days" {
  description = "Age (days) after which raw bronze history objects (lake/bronze/) move to NEARLINE."
  type        = number
  default     = 30
  validation {
    condition     = var.bronze_nearline_after_days >= 30
    error_message = "bronze_nearline_after_days must be >= 30 (NEARLINE has a 30-day minimum storage duration)."
  }
}

variable "bronze_coldline_after_days" {
  description = "Age (days) after which raw bronze history moves to COLDLINE."
  type        = number
  default     = 90
  validation {
    condition     = var.bronze_coldline_after_days >= var.bronze_nearline_after_days + 30
    error_message = "bronze_coldline_after_days must be at least 30 days after bronze_nearline_after_days."
  }
}

variable "bronze_archive_after_days" {
  description = "Age (days) after which raw bronze history moves to ARCHIVE."
  type        = number
  default     = 365
  validation {
    condition     = var.bronze_archive_after_days >= var.bronze_coldline_after_days + 90
    error_message = "bronze_archive_after_days must be at least 90 days after bronze_coldline_after_days (COLDLINE minimum storage duration)."
  }
}

# ---------------------------------------------------------------------------------------------
# Managed Service for Apache Kafka (+ Kafka Connect for Pub/Sub ingestion)
# ---------------------------------------------------------------------------------------------
variable "kafka_vcpu_count" {
  description = "vCPUs of the Managed Kafka cluster (minimum 3)."
  type        = number
  default     = 3
  validation {
    condition     = var.kafka_vcpu_count >= 3 && floor(var.kafka_vcpu_count) == var.kafka_vcpu_count
    error_message = "kafka_vcpu_count must be a whole number >= 3."
  }
}

variable "kafka_memory_gib" {
  description = "Memory of the Managed Kafka cluster in GiB (1 to 8 GiB per vCPU)."
  type        = number
  default     = 3
  validation {
    condition     = var.kafka_memory_gib >= var.kafka_vcpu_count && var.kafka_memory_gib <= 8 * var.kafka_vcpu_count
    error_message = "kafka_memory_gib must be between 1x and 8x kafka_vcpu_count."
  }
}

variable "kafka_topic" {
  description = "Name of the event topic (must match conf/gcp.yaml kafka.topic)."
  type        = string
  default     = "events"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,249}$", var.kafka_topic))
    error_message = "kafka_topic must be a legal Kafka topic name."
  }
}

variable "kafka_partitions" {
  description = "Partitions of the event topic (can grow, never shrink)."
  type        = number
  default     = 12
  validation {
    condition     = var.kafka_partitions >= 1 && var.kafka_partitions <= 1024
    error_message = "kafka_partitions must be between 1 and 1024."
  }
}

variable "kafka_retention_hours" {
  description = "Retention of the event topic. The lake's bronze layer is the long-term archive; Kafka only needs enough to replay after an outage."
  type        = number
  default     = 168
  validation {
    condition     = var.kafka_retention_hours >= 24
    error_message = "kafka_retention_hours must be >= 24 so a stopped stream can catch up after a day."
  }
}

variable "enable_pubsub_ingest" {
  description = "Create a Pub/Sub topic + Managed Kafka Connect cluster + Pub/Sub source connector forwarding it into the Kafka topic (for shops whose front end publishes to Pub/Sub)."
  type        = bool
  default     = true
}

variable "connect_vcpu_count" {
  description = "vCPUs of the Kafka Connect cluster (minimum 3)."
  type        = number
  default     = 3
  validation {
    condition     = var.connect_vcpu_count >= 3
    error_message = "connect_vcpu_count must be >= 3."
  }
}

variable "connect_memory_gib" {
  description = "Memory of the Kafka Connect cluster in GiB (1 to 8 GiB per vCPU, minimum 3)."
  type        = number
  default     = 3
  validation {
    condition     = var.connect_memory_gib >= 3 && var.connect_memory_gib >= var.connect_vcpu_count && var.connect_memory_gib <= 8 * var.connect_vcpu_count
    error_message = "connect_memory_gib must be >= 3 and between 1x and 8x connect_vcpu_count."
  }
}

# ---------------------------------------------------------------------------------------------
# Dataproc (streaming cluster) and Serverless batches
# ---------------------------------------------------------------------------------------------
variable "dataproc_image_version" {
  description = "Dataproc on Compute Engine image for the streaming cluster: 3.0 = Spark 4.0, Scala 2.13, Java 17, Python 3.11."
  type        = string
  default     = "3.0-debian12"
  validation {
    condition     = can(regex("^3\\.0(\\.[0-9]+)?-(debian12|ubuntu24|rocky9)$", var.dataproc_image_version))
    error_message = "dataproc_image_version must be a 3.0 image (Spark 4.0), e.g. 3.0-debian12."
  }
}

variable "dataproc_master_machine_type" {
  description = "Machine type of the streaming cluster's master (hosts the Spark driver in cluster mode only if YARN puts it there)."
  type        = string
  default     = "n2-standard-4"
}

variable "dataproc_worker_machine_type" {
  description = "Machine type of the streaming cluster's workers."
  type        = string
  default     = "n2-standard-4"
}

variable "dataproc_worker_count" {
  description = "Primary workers of the streaming cluster: 0 (single-node cluster, dev) or >= 2."
  type        = number
  default     = 2
  validation {
    condition     = var.dataproc_worker_count == 0 || var.dataproc_worker_count >= 2
    error_message = "dataproc_worker_count must be 0 (single node) or at least 2 (a Dataproc constraint)."
  }
}

variable "dataproc_pip_packages" {
  description = "Python packages installed on the streaming cluster at creation (dataproc:pip.packages). Ignored when requirements/dataproc.txt exists in the repository: that file is then the single source."
  type        = list(string)
  default     = ["pydantic==2.12.5", "PyYAML==6.0.3"] # as pinned in requirements/base.txt
  validation {
    condition     = alltrue([for p in var.dataproc_pip_packages : can(regex("^[A-Za-z0-9._-]+(\\[[A-Za-z0-9,._-]+\\])?==[A-Za-z0-9.+!-]+$", p))])
    error_message = "dataproc_pip_packages entries must be pinned as name==version (no commas)."
  }
}

variable "batch_runtime_version" {
  description = "Serverless for Apache Spark runtime of the batch jobs (3.0 = Spark 4.0.x, Python 3.12)."
  type        = string
  default     = "3.0"
  validation {
    condition     = can(regex("^3\\.[0-9]+$", var.batch_runtime_version))
    error_message = "batch_runtime_version must be a 3.x Serverless runtime (Spark 4)."
  }
}

variable "batch_jobs" {
  description = "Nightly batch chain, in order: stages of jobs/batch/run.py (conf/batch_chain.yaml `stages`) run one after the other by Workflows, one Serverless batch each. Default (null): the `nightly` list of conf/batch_chain.yaml, the same file `make batch` runs its stages from."
  type        = list(string)
  default     = null
  validation {
    condition     = var.batch_jobs == null ? true : length(var.batch_jobs) > 0 && alltrue([for j in var.batch_jobs : can(regex("^[a-z][a-z0-9_]{0,40}$", j))])
    error_message = "batch_jobs must be non-empty stage names of conf/batch_chain.yaml (lowercase, digits, '_')."
  }
}

variable "batch_schedule" {
  description = "Cron schedule (Cloud Scheduler syntax) of the nightly batch chain."
  type        = string
  default     = "30 2 * * *"
  validation {
    condition     = length(split(" ", var.batch_schedule)) == 5
    error_message = "batch_schedule must be a 5-field cron expression."
  }
}

variable "batch_time_zone" {
  description = "Time zone of batch_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "batch_timeout_minutes" {
  description = "TTL of one Serverless batch; the chain fails (and alerts) when a step runs longer."
  type        = number
  default     = 120
  validation {
    condition     = var.batch_timeout_minutes >= 10 && var.batch_timeout_minutes <= 1440
    error_message = "batch_timeout_minutes must be between 10 and 1440."
  }
}

# ---------------------------------------------------------------------------------------------
# MLflow tracking server (Cloud Run + Cloud SQL Postgres + GCS artifacts)
# ---------------------------------------------------------------------------------------------
variable "mlflow_image" {
  description = "Container image of the MLflow server (built from terraform/mlflow/ into the Artifact Registry repo). Empty: the Cloud Run service is not created yet (first apply, before the image exists)."
  type        = string
  default     = ""
  validation {
    condition     = var.mlflow_image == "" || can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[^/]+/[^/]+/[^:@]+[:@].+$", var.mlflow_image))
    error_message = "mlflow_image must be empty or an Artifact Registry image reference REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG (or @sha256:...)."
  }
}

variable "dashboard_image" {
  description = "Container image of the dashboard and unsubscribe services (built from terraform/dashboard/Dockerfile into the Artifact Registry repo by the deploy workflow). Empty: the two Cloud Run services are not created yet (first apply), and the streaming job cannot be submitted (no unsubscribe URL)."
  type        = string
  default     = ""
  validation {
    condition     = var.dashboard_image == "" || can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[^/]+/[^/]+/[^:@]+[:@].+$", var.dashboard_image))
    error_message = "dashboard_image must be empty or an Artifact Registry image reference REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG (or @sha256:...)."
  }
}

variable "dashboard_members" {
  description = "Business users allowed through IAP to the dashboard (roles/iap.httpsResourceAccessor), e.g. [\"group:sales@example.com\"]."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.dashboard_members : can(regex("^(user|group|domain):", m))])
    error_message = "dashboard_members entries must start with user:, group: or domain: (people sign in through IAP; never allUsers)."
  }
}

variable "unsubscribe_max_instances" {
  description = "Upper bound of the public unsubscribe service's instances (it is reachable by anyone: bounds cost under abuse)."
  type        = number
  default     = 3
  validation {
    condition     = var.unsubscribe_max_instances >= 1 && var.unsubscribe_max_instances <= 20
    error_message = "unsubscribe_max_instances must be between 1 and 20."
  }
}

variable "mlflow_db_tier" {
  description = "Cloud SQL machine tier of the MLflow backend store."
  type        = string
  default     = "db-custom-1-3840"
  validation {
    condition     = can(regex("^db-", var.mlflow_db_tier))
    error_message = "mlflow_db_tier must be a Cloud SQL tier such as db-custom-1-3840."
  }
}

variable "mlflow_ui_members" {
  description = "Principals allowed to open the MLflow UI/API (roles/run.invoker), e.g. [\"group:data-science@example.com\"]. Batch jobs' service account is always allowed."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.mlflow_ui_members : can(regex("^(user|group|serviceAccount|domain):", m))])
    error_message = "mlflow_ui_members entries must start with user:, group:, serviceAccount: or domain: (never allUsers)."
  }
}

# ---------------------------------------------------------------------------------------------
# BigQuery / Looker Studio
# ---------------------------------------------------------------------------------------------
variable "biglake_enabled" {
  description = "Create the BigLake tables over the gold Delta tables. BigQuery reads a table's _delta_log when the table is created, so set this to true once the streaming app and the first nightly chain have written the gold tables (docs/deploy.md, BigQuery and Looker Studio)."
  type        = bool
  default     = false
}

variable "biglake_gold_tables" {
  description = "Gold Delta tables (folder names under lake/gold/) exposed as BigLake tables. Default (null): every gold table the platform writes (local.gold_tables in bigquery.tf)."
  type        = list(string)
  default     = null
  validation {
    condition     = var.biglake_gold_tables == null ? true : alltrue([for t in var.biglake_gold_tables : can(regex("^[a-z][a-z0-9_]{0,100}$", t))])
    error_message = "biglake_gold_tables entries must be lowercase table folder names (letters, digits, '_')."
  }
}

variable "bigquery_reader_members" {
  description = "Principals (e.g. group:analysts@example.com) who may query the gold dataset from BigQuery/Looker Studio."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.bigquery_reader_members : can(regex("^(user|group|serviceAccount|domain):", m))])
    error_message = "bigquery_reader_members entries must start with user:, group:, serviceAccount: or domain:."
  }
}

# ---------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------
variable "notification_channels" {
  description = "Existing Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) that receive every alert."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels entries must be full IDs: projects/PROJECT/notificationChannels/NUMBER."
  }
}

variable "alert_email" {
  description = "Optional e-mail address; when set an e-mail notification channel is created and added to every alert."
  type        = string
  default     = ""
  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be empty or an e-mail address."
  }
}

variable "streaming_stall_minutes" {
  description = "Alert when the streaming job has reported no micro-batch progress for this many minutes (also fires when it is not running)."
  type        = number
  default     = 10
  validation {
    condition     = var.streaming_stall_minutes >= 5 && var.streaming_stall_minutes <= 1440
    error_message = "streaming_stall_minutes must be between 5 and 1440."
  }
}

# ---------------------------------------------------------------------------------------------
# CI/CD: GitHub Actions through Workload Identity Federation
# ---------------------------------------------------------------------------------------------
variable "github_repository_id" {
  description = "Numeric id of the GitHub repository whose deploy workflow (branch main, environment var.env) may impersonate the deployer service account (`gh api repos/OWNER/NAME --jq .id`). Bound by id, not name: names can be re-registered. Empty: no WIF pool."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[0-9]*$", var.github_repository_id))
    error_message = "github_repository_id must be empty or the repository's numeric id (gh api repos/OWNER/NAME --jq .id)."
  }
}

variable "github_repository" {
  description = "owner/name of the GitHub repository with id var.github_repository_id; a label only (pool description), trust is bound to the id."
  type        = string
  default     = ""
  validation {
    condition     = var.github_repository == "" || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be empty or owner/name."
  }
}
