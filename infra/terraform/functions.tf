# Every Ragline function from one source zip, many entry points (see local.functions in main.tf).
#
# Ingress: public API functions accept internet traffic only through the load balancer when it
# is enabled; every other function is internal-only. Pub/Sub push, Cloud Tasks, Eventarc and
# Cloud Scheduler in the same project count as internal traffic (they call the default run.app
# URL), so the pipeline and the sweep job still reach them; IAM (run.invoker for one invoker
# identity per function, OIDC) is the second layer.

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  project     = var.project_id
  location    = var.region
  description = each.value.description
  labels      = merge(var.labels, { function = replace(each.key, "_", "-") })

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = "projects/${var.project_id}/serviceAccounts/${local.build_service_account_email}"

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    service_account_email            = google_service_account.function[each.value.identity].email
    all_traffic_on_latest_revision   = true

    ingress_settings = (
      each.value.public
      ? (var.enable_load_balancer ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_ALL")
      : "ALLOW_INTERNAL_ONLY"
    )

    environment_variables = merge(local.common_env, each.value.env, {
      # IAM database users are named after the service account minus ".gserviceaccount.com".
      RAGLINE_DB_USER = trimsuffix(google_service_account.function[each.value.identity].email, ".gserviceaccount.com")
    })

    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = local.secrets[secret_environment_variables.value].env
        project_id = var.project_id
        secret     = local.secrets[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  # Storage events reach ingest through an Eventarc trigger managed by Cloud Functions; failed
  # deliveries are retried (the handler fails events older than RAGLINE_MAX_EVENT_AGE_S).
  dynamic "event_trigger" {
    for_each = each.value.trigger == "gcs" ? [each.value.event_type] : []
    content {
      trigger_region        = var.region
      event_type            = event_trigger.value
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.invoker["eventarc"].email

      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.uploads.name
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.function_sql,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.function_accessor,
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_pubsub_publisher,
  ]
}
