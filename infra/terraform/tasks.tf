# Cloud Tasks queue of embed tasks. chunk enqueues HTTP tasks targeting the embed function with
# an OIDC token of the tasks invoker service account; task names are deterministic so a
# redelivered chunk message cannot enqueue a batch twice.

# The queue follows the embeddings provider's limits (variables embedding_*):
#   request_tokens  = min(embedding_request_tokens, embedding_tpm)   no request is over a minute's budget
#   instances       = clamp(ceil(tpm * request_seconds / (60 * request_tokens)), 1, embed_max_instances)
#                     full requests in flight to spend the minute's tokens, each lasting request_seconds
#   dispatches/s    = min(rpm / 60, 500)                              a task makes at most one request when
#                                                                     its chunks fit one; a faster queue
#                                                                     could only buy 429s
#   concurrent      = instances                                       one task per instance (concurrency 1)
# Each instance paces itself to rpm / instances and tpm / instances (RAGLINE_EMBEDDING_*,
# shared/embeddings/pacer.py), so together they stay inside the project's limits.
locals {
  embedding_request_tokens = min(var.embedding_request_tokens, var.embedding_tpm)
  embed_instances = max(1, min(var.embed_max_instances, ceil(
    var.embedding_tpm * var.embedding_request_seconds / (60 * local.embedding_request_tokens)
  )))
  embed_dispatches_per_second = min(var.embedding_rpm / 60, 500)
  # One instance's share; every function reads it (common_env in main.tf).
  embedding_share = {
    rpm            = max(1, floor(var.embedding_rpm / local.embed_instances))
    tpm            = max(1, floor(var.embedding_tpm / local.embed_instances))
    request_tokens = max(1, min(local.embedding_request_tokens, floor(var.embedding_tpm / local.embed_instances)))
  }
}

resource "google_cloud_tasks_queue" "embed" {
  name     = var.tasks_queue_name
  project  = var.project_id
  location = var.region

  # Derived from the embeddings provider's limits (locals above); the embed function's
  # max_instance_count is the same number.
  rate_limits {
    max_dispatches_per_second = local.embed_dispatches_per_second
    max_concurrent_dispatches = local.embed_instances
  }

  # Same attempt budget as the Pub/Sub steps (RAGLINE_MAX_ATTEMPTS). Cloud Tasks has no
  # dead-letter queue: embed reads X-CloudTasks-TaskRetryCount and, on the last attempt, fails
  # the version itself instead of raising.
  retry_config {
    max_attempts  = var.max_delivery_attempts
    min_backoff   = "${var.retry_min_backoff_seconds}s"
    max_backoff   = "${var.retry_max_backoff_seconds}s"
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.api]
}

# Webhook deliveries: the webhooks function enqueues one task per (event, webhook), named
# webhook-<event id>-<webhook id> so a redelivered event cannot deliver twice; the
# deliver_webhook function answers 503 to have a failed delivery retried with backoff.
resource "google_cloud_tasks_queue" "webhooks" {
  name     = var.webhook_tasks_queue_name
  project  = var.project_id
  location = var.region

  # Receivers are third-party servers: a modest pace, and few at once.
  rate_limits {
    max_dispatches_per_second = 10
    max_concurrent_dispatches = 10
  }

  retry_config {
    max_attempts  = var.max_delivery_attempts
    min_backoff   = "10s"
    max_backoff   = "600s"
    max_doublings = 6
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.api]
}

# Source syncs: one task per item of a run, named sync-<run id>-<hash of the item's key> so a
# redelivered task cannot visit an item twice; manage and sweep enqueue a run's first task,
# the sync function the rest.
resource "google_cloud_tasks_queue" "sync" {
  name     = var.sync_tasks_queue_name
  project  = var.project_id
  location = var.region

  # Sources are other people's servers and buckets: a modest pace, and few at once.
  rate_limits {
    max_dispatches_per_second = var.sync_max_dispatches_per_second
    max_concurrent_dispatches = 10
  }

  retry_config {
    max_attempts  = var.max_delivery_attempts
    min_backoff   = "${var.retry_min_backoff_seconds}s"
    max_backoff   = "${var.retry_max_backoff_seconds}s"
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.api]
}
