# Buckets: uploads (the documents themselves), work (parsed JSON at deterministic paths) and
# function source. All regional in var.region: the Eventarc storage trigger must be in the
# bucket's region.

# Access logs and object versioning are left off on purpose: request auditing comes from Cloud
# Audit Logs (data access logs can be enabled per project), and on the uploads bucket an
# overwrite must replace the document rather than keep a hidden copy that deletion would miss.
resource "google_storage_bucket" "uploads" {
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs, not legacy bucket access logs.
  #checkov:skip=CKV_GCP_78:Versioning off by design: deleting an upload must delete the document and every copy.
  name                        = local.upload_bucket_name
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = false
  }

  # Browsers PUT directly to V4 signed URLs from the frontend's origins.
  dynamic "cors" {
    for_each = length(var.allowed_origins) > 0 ? [1] : []
    content {
      origin          = var.allowed_origins
      method          = ["PUT", "POST"]
      response_header = concat(var.upload_cors_headers, ["ETag"])
      max_age_seconds = 3600
    }
  }

  # Never expire uploads: a deleted object fires the ingest "deleted" trigger, which deletes
  # the document. Only abandoned multipart uploads (never finalized) are cleaned up.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "work" {
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs, not legacy bucket access logs.
  #checkov:skip=CKV_GCP_78:Derived data at deterministic paths, rewritten idempotently; versions would only accumulate.
  name                        = local.work_bucket_name
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = false
  }

  dynamic "lifecycle_rule" {
    for_each = var.work_retention_days > 0 ? [var.work_retention_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs, not legacy bucket access logs.
  #checkov:skip=CKV_GCP_78:Each source zip has a content-addressed name; versions add nothing.
  name                        = "${var.project_id}-${var.name_prefix}-source"
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only build inputs live here
  labels                      = var.labels

  versioning {
    enabled = false
  }

  depends_on = [google_project_service.api]
}

# One zip of the repository root for every function. Only what the runtime imports ships:
# keep these excludes in step with .gcloudignore.
data "archive_file" "source" {
  type        = "zip"
  source_dir  = abspath("${path.module}/${var.function_source_dir}")
  output_path = "${path.module}/.terraform/build/ragline-source.zip" # git-ignored

  excludes = [
    ".git/**",
    ".venv/**",
    ".data/**",
    ".ci/**",
    ".terraform/**",
    ".pytest_cache/**",
    ".mypy_cache/**",
    ".ruff_cache/**",
    "**/__pycache__/**",
    "**/*.pyc",
    "tests/**",
    "scripts/**",
    "infra/**",
    "docs/**",
    ".env",
    ".gitignore",
    ".gcloudignore",
    "cloudbuild.yaml",
    "Makefile",
    # The buildpack must install requirements.txt only (no dev, local or MiniLM extras) and
    # must not mistake the project metadata for the thing to install.
    "pyproject.toml",
    "requirements-dev.txt",
    "requirements-local.txt",
    "requirements-minilm.txt",
  ]
}

# Named by content hash: any code change is a new object name, which changes build_config and
# redeploys every function.
resource "google_storage_bucket_object" "source" {
  name   = "functions/ragline-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}
