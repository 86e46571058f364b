variable "project_id" {
  description = "Google Cloud project id to deploy Ragline into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id."
  }
}

variable "region" {
  description = "Region of the functions, buckets, Cloud SQL, Cloud Tasks and the GCS trigger (they must match for the storage trigger)."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every named resource (functions, service accounts, instance). Short, because service account ids are capped at 30 characters."
  type        = string
  default     = "ragline"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,9}$", var.name_prefix))
    error_message = "name_prefix must be 2-10 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels applied to every resource that supports them."
  type        = map(string)
  default     = { app = "ragline" }
}

# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of a Pub/Sub message (and attempts of an embed task) before it is dead-lettered. Pub/Sub accepts 5-100."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (the Pub/Sub dead-letter limits)."
  }
}

variable "retry_min_backoff_seconds" {
  description = "Minimum delay before a failed Pub/Sub push or Cloud Tasks attempt is retried."
  type        = number
  default     = 10

  validation {
    condition     = var.retry_min_backoff_seconds >= 0 && var.retry_min_backoff_seconds <= 600
    error_message = "retry_min_backoff_seconds must be between 0 and 600."
  }
}

variable "retry_max_backoff_seconds" {
  description = "Maximum delay between retries of a failed Pub/Sub push or Cloud Tasks attempt."
  type        = number
  default     = 600

  validation {
    condition     = var.retry_max_backoff_seconds >= 0 && var.retry_max_backoff_seconds <= 600
    error_message = "retry_max_backoff_seconds must be between 0 and 600 (the Pub/Sub maximum)."
  }
}

variable "max_event_age_seconds" {
  description = "Events older than this are failed instead of retried (RAGLINE_MAX_EVENT_AGE_S); bounds Eventarc's 24h retry window."
  type        = number
  default     = 21600
}

# ---------------------------------------------------------------------------------------------
# Sweeper (re-drives stalled versions; scheduler.tf)
# ---------------------------------------------------------------------------------------------

variable "sweep_schedule" {
  description = "When Cloud Scheduler runs the sweep function (unix-cron, interpreted in Etc/UTC)."
  type        = string
  default     = "*/5 * * * *"

  validation {
    condition     = trimspace(var.sweep_schedule) != ""
    error_message = "sweep_schedule must be a non-empty cron schedule, e.g. \"*/5 * * * *\"."
  }
}

variable "stall_after_seconds" {
  description = "A version with no progress for this long is re-driven by the sweep (RAGLINE_STALL_AFTER_S). Longer than the stage lease (RAGLINE_LEASE_S, 600 s, itself above the slowest step's 540 s timeout), so a running step is never re-driven."
  type        = number
  default     = 900

  validation {
    condition     = var.stall_after_seconds > 600 && floor(var.stall_after_seconds) == var.stall_after_seconds
    error_message = "stall_after_seconds must be a whole number of seconds, above 600 (the stage lease, itself above the 540 s parse timeout)."
  }
}

variable "max_sweeps" {
  description = "Re-drives of a stalled version before the sweep fails it (RAGLINE_MAX_SWEEPS)."
  type        = number
  default     = 3

  validation {
    condition     = var.max_sweeps >= 1 && var.max_sweeps <= 20 && floor(var.max_sweeps) == var.max_sweeps
    error_message = "max_sweeps must be a whole number between 1 and 20."
  }
}

# ---------------------------------------------------------------------------------------------
# Topics and queue (names are passed to the functions as RAGLINE_TOPIC_* / RAGLINE_TASKS_QUEUE)
# ---------------------------------------------------------------------------------------------

variable "topic_parse" {
  description = "Topic ingest publishes to; the parse function's push subscription reads it."
  type        = string
  default     = "ragline-parse"
}

variable "topic_chunk" {
  description = "Topic parse publishes to; the chunk function's push subscription reads it."
  type        = string
  default     = "ragline-chunk"
}

variable "topic_index" {
  description = "Topic embed publishes to when a version has no chunk left to embed; read by index."
  type        = string
  default     = "ragline-index"
}

variable "topic_lifecycle" {
  description = "Topic of document lifecycle events (stage changes, ready, failed, deleted) for the live event stream."
  type        = string
  default     = "ragline-lifecycle"
}

variable "topic_dead_letter" {
  description = "Dead-letter topic of the pipeline subscriptions; read by the dead_letter function."
  type        = string
  default     = "ragline-dead-letter"
}

variable "webhook_tasks_queue_name" {
  description = "Cloud Tasks queue of webhook deliveries. A deleted queue's name cannot be reused for about 7 days."
  type        = string
  default     = "ragline-webhooks"
}

variable "tasks_queue_name" {
  description = "Cloud Tasks queue of embed tasks. A deleted queue's name cannot be reused for about 7 days."
  type        = string
  default     = "ragline-embed"
}

# The embeddings provider's limits (OpenAI: per model, per organisation; tier 1 for
# text-embedding-3-small by default). The embed queue's rate and concurrency and each
# instance's share are derived from them in tasks.tf (local.embedding).
variable "embedding_rpm" {
  description = "Embedding requests per minute the provider allows the project."
  type        = number
  default     = 3000

  validation {
    condition     = var.embedding_rpm >= 1
    error_message = "embedding_rpm must be at least 1."
  }
}

variable "embedding_tpm" {
  description = "Embedding tokens per minute the provider allows the project."
  type        = number
  default     = 1000000

  validation {
    condition     = var.embedding_tpm >= 1
    error_message = "embedding_tpm must be at least 1."
  }
}

variable "embedding_request_tokens" {
  description = "Most tokens in one embeddings request (OpenAI accepts up to 300,000)."
  type        = number
  default     = 300000

  validation {
    condition     = var.embedding_request_tokens >= 1 && var.embedding_request_tokens <= 300000
    error_message = "embedding_request_tokens must be in [1, 300000]."
  }
}

variable "embedding_request_seconds" {
  description = "Expected duration of one full embeddings request; sizes how many run at once."
  type        = number
  default     = 10

  validation {
    condition     = var.embedding_request_seconds > 0
    error_message = "embedding_request_seconds must be positive."
  }
}

variable "embed_max_instances" {
  description = "Cap on embed function instances (and embed tasks in flight), whatever the limits allow."
  type        = number
  default     = 10

  validation {
    condition     = var.embed_max_instances >= 1
    error_message = "embed_max_instances must be at least 1."
  }
}

# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

variable "upload_bucket_name" {
  description = "Name of the uploads bucket (empty: <project_id>-<name_prefix>-uploads). Objects here ARE the documents: deleting one deletes the document."
  type        = string
  default     = ""
}

variable "work_bucket_name" {
  description = "Name of the work bucket holding parsed JSON (empty: <project_id>-<name_prefix>-work)."
  type        = string
  default     = ""
}

variable "allowed_origins" {
  description = "Frontend origins: they may call the API (CORS) and PUT to V4 signed upload URLs (uploads bucket CORS)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://[^/]+$", o))])
    error_message = "allowed_origins must be scheme://host[:port] origins without a path, e.g. https://app.example.com."
  }
}

variable "upload_cors_headers" {
  description = "Request headers a browser may send with a signed PUT (must include every header the signed URL signs, e.g. x-goog-meta-*)."
  type        = list(string)
  default     = ["Content-Type", "Content-MD5", "x-goog-content-sha256"]
}

variable "work_retention_days" {
  description = "Delete parsed JSON in the work bucket after this many days (0 keeps it; re-chunking a version needs its parsed JSON)."
  type        = number
  default     = 0

  validation {
    condition     = var.work_retention_days >= 0
    error_message = "work_retention_days must be >= 0."
  }
}

variable "function_source_dir" {
  description = "Repository root zipped as the function source (main.py, functions/, shared/, requirements.txt)."
  type        = string
  default     = "../.."
}

# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------

variable "database_version" {
  description = "Cloud SQL PostgreSQL major version; the schema needs pgvector >= 0.8 (iterative index scans)."
  type        = string
  default     = "POSTGRES_17"

  validation {
    condition     = contains(["POSTGRES_16", "POSTGRES_17", "POSTGRES_18"], var.database_version)
    error_message = "database_version must be POSTGRES_16, POSTGRES_17 or POSTGRES_18."
  }
}

variable "db_edition" {
  description = "Cloud SQL edition. PostgreSQL 16+ defaults to ENTERPRISE_PLUS, which needs db-perf-optimized-* tiers."
  type        = string
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.db_edition)
    error_message = "db_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "db_tier" {
  description = "Cloud SQL machine tier (HNSW index builds want memory: size maintenance_work_mem accordingly)."
  type        = string
  default     = "db-custom-2-8192"
}

variable "db_availability_type" {
  description = "ZONAL or REGIONAL (high availability)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_disk_size_gb" {
  description = "Initial disk size in GB (auto-resizes)."
  type        = number
  default     = 20
}

variable "db_name" {
  description = "Database name (RAGLINE_DB_NAME)."
  type        = string
  default     = "ragline"
}

variable "db_backup_retained_count" {
  description = "Automated backups kept."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Protect the Cloud SQL instance from deletion (both Terraform's guard and the API-level flag)."
  type        = bool
  default     = true
}

variable "migrator_service_account_email" {
  description = "Service account that runs schema migrations (usually the Cloud Build deployer). Gets an IAM database user; grant it cloudsqlsuperuser once (README). Empty: none."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------------
# Secrets and functions
# ---------------------------------------------------------------------------------------------

variable "openai_secret_id" {
  description = "Secret Manager secret holding the OpenAI API key (value added out of band, never by Terraform)."
  type        = string
  default     = "openai-api-key"
}

variable "function_env" {
  description = "Extra environment variables for every function (e.g. RAGLINE_DEFAULT_EMBEDDING_MODEL). Never put secrets here."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, _ in var.function_env : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "function_env keys must be upper-case environment variable names."
  }
}

variable "openai_model" {
  description = "Chat model the answer function writes answers with (OPENAI_MODEL)."
  type        = string
  default     = "gpt-4o-mini"
}

variable "openai_base_url" {
  description = "An OpenAI-compatible endpoint to use instead of api.openai.com (empty: OpenAI)."
  type        = string
  default     = ""
}

variable "answer_min_similarity" {
  description = "Drop retrieved passages whose cosine similarity to the question is lower (null: keep all)."
  type        = number
  default     = null
}

variable "answer_min_instances" {
  description = "Warm instances of the answer function (cold starts hurt interactive latency)."
  type        = number
  default     = 0
}

variable "build_service_account_email" {
  description = "Service account Cloud Build uses to build the functions (empty: a dedicated one is created)."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------------------------

variable "enable_load_balancer" {
  description = "Front upload/manage/answer with a global HTTPS load balancer (serverless NEGs, /v1 path map). When false the functions' own URLs are public."
  type        = bool
  default     = true
}

variable "lb_domains" {
  description = "Domains of the load balancer's Google-managed certificate (required when enable_load_balancer is true; point their DNS at the load_balancer_ip output)."
  type        = list(string)
  default     = []
}

variable "lb_security_policy" {
  description = "Optional Cloud Armor security policy (self link or id) attached to the public backends."
  type        = string
  default     = null
}

variable "auth_issuer" {
  description = "The iss of accepted ID tokens (empty: Identity Platform's, https://securetoken.google.com/<project>)."
  type        = string
  default     = ""
}

variable "auth_audience" {
  description = "The aud of accepted ID tokens (empty: the project id, as Identity Platform issues them)."
  type        = string
  default     = ""
}

variable "auth_jwks_url" {
  description = "URL of the issuer's public keys, a JWKS."
  type        = string
  default     = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
}

variable "auth_iap_audience" {
  description = "IAP's audience (/projects/<number>/global/backendServices/<id>) when the API sits behind IAP; empty: no IAP."
  type        = string
  default     = ""
}

variable "bootstrap_owners" {
  description = "Verified emails that own the default workspace on first sign-in (a new deployment's first owners)."
  type        = list(string)
  default     = []
}

variable "cors_origins" {
  description = "More origins allowed to call the API from a browser (CORS) but not to upload to the bucket; allowed_origins are allowed already."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Monitoring (monitoring.tf)
# ---------------------------------------------------------------------------------------------

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) every alert notifies; empty: alerts only show in the console."
  type        = list(string)
  default     = []
}

variable "alert_failed_versions_per_hour" {
  description = "Alert when more document versions than this fail within an hour."
  type        = number
  default     = 5

  validation {
    condition     = var.alert_failed_versions_per_hour >= 0
    error_message = "alert_failed_versions_per_hour must be >= 0."
  }
}

variable "alert_5xx_ratio" {
  description = "Alert when this share of the functions' requests (0-1) ends in a 5xx for 5 minutes."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_5xx_ratio > 0 && var.alert_5xx_ratio < 1
    error_message = "alert_5xx_ratio must be between 0 and 1."
  }
}

variable "alert_oldest_unacked_seconds" {
  description = "Alert when a pipeline subscription's oldest unacknowledged message is older than this (seconds)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_oldest_unacked_seconds >= 60
    error_message = "alert_oldest_unacked_seconds must be at least 60."
  }
}

variable "sync_tasks_queue_name" {
  description = "Cloud Tasks queue of source sync tasks. A deleted queue's name cannot be reused for about 7 days."
  type        = string
  default     = "ragline-sync"
}

variable "sync_max_dispatches_per_second" {
  description = "Source sync tasks (item visits) dispatched per second at most, across all sources."
  type        = number
  default     = 5
}

variable "source_buckets" {
  description = "Buckets gcs sources may read: the sync function gets roles/storage.objectViewer on each, and the API refuses a gcs source of any other bucket."
  type        = list(string)
  default     = []
}

variable "quota_defaults" {
  description = "Default quotas and rate limits of every workspace (its admins may change them; 0: unlimited)."
  type = object({
    requests_per_minute         = number
    api_key_requests_per_minute = number
    questions_per_day           = number
    tokens_per_question         = number
    monthly_tokens              = number
  })
  default = {
    requests_per_minute         = 600
    api_key_requests_per_minute = 600
    questions_per_day           = 1000
    tokens_per_question         = 0
    monthly_tokens              = 0
  }
}
