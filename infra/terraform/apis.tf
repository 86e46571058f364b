# APIs Ragline needs. disable_on_destroy = false: destroying this stack must not switch off APIs
# that other workloads in the project may use.

locals {
  apis = toset(concat(
    [
      "artifactregistry.googleapis.com", # function images
      "cloudbuild.googleapis.com",       # function builds
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com", # the sweep job
      "cloudtasks.googleapis.com",
      "eventarc.googleapis.com", # storage triggers of ingest
      "iam.googleapis.com",
      "iamcredentials.googleapis.com", # signBlob for V4 signed URLs
      "logging.googleapis.com",        # log-based metrics (monitoring.tf)
      "monitoring.googleapis.com",     # alert policies and the dashboard
      "pubsub.googleapis.com",
      "run.googleapis.com", # gen2 functions are Cloud Run services
      "secretmanager.googleapis.com",
      "sqladmin.googleapis.com", # Cloud SQL connector
      "storage.googleapis.com",
    ],
    var.enable_load_balancer ? ["compute.googleapis.com"] : [],
  ))
}

resource "google_project_service" "api" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Service agents are created lazily; create them now so IAM bindings to them do not fail on a
# fresh project.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.api]
}

resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project = var.project_id
  service = "eventarc.googleapis.com"

  depends_on = [google_project_service.api]
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.api]
}
