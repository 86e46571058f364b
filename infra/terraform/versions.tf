# Providers and state. The google and google-beta providers are pinned to one major line so an
# unattended `terraform init -upgrade` cannot pull in a breaking release; commit the lock file.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.20"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.20"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4" # 2.4 added glob patterns in archive_file.excludes
    }
  }

  # Partial configuration: the bucket and prefix come from
  # `terraform init -backend-config=bucket=... -backend-config=prefix=...` (see cloudbuild.yaml).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
