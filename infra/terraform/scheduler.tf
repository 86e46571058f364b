# The sweep job: Cloud Scheduler POSTs to the private sweep function every var.sweep_schedule,
# which re-drives versions stalled in the pipeline (RAGLINE_STALL_AFTER_S) and fails those
# re-driven RAGLINE_MAX_SWEEPS times.
#
# Private like embed: the function keeps ALLOW_INTERNAL_ONLY ingress, because Cloud Scheduler
# jobs in the same project are internal traffic for Cloud Run functions when they call the
# default run.app URL (service_config[0].uri), and the job authenticates with an OIDC token
# minted as the scheduler invoker, the only identity with run.invoker on sweep (iam.tf).
# Cloud Scheduler mints that token through its service agent
# (service-PROJECT_NUMBER@gcp-sa-cloudscheduler.iam.gserviceaccount.com), which holds
# roles/cloudscheduler.serviceAgent from the moment the API is enabled; never revoke it.

resource "google_cloud_scheduler_job" "sweep" {
  name        = "${var.name_prefix}-sweep"
  project     = var.project_id
  region      = var.region
  description = "Re-drive document versions stalled in the Ragline pipeline."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  # Longer than the function's timeout (300 s), so a slow sweep ends on the function's side
  # rather than being cut off and retried while it still runs.
  attempt_deadline = "320s"

  # Modest: the next scheduled run is the real retry. One instance, one request at a time: a
  # retry that lands on a sweep still running is refused (429) and retried once more.
  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "120s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["sweep"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.invoker["scheduler"].email
      audience              = google_cloudfunctions2_function.function["sweep"].service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.api,
    google_cloud_run_v2_service_iam_member.invoker,
  ]
}
