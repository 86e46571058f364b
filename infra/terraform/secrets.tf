# Secrets. Terraform creates the secret container only: the value is added out of band, so it
# never enters Terraform state or this repository:
#
#   printf '%s' "$OPENAI_API_KEY" | gcloud secrets versions add openai-api-key \
#     --project=PROJECT_ID --data-file=-
#
# Add the first version before the functions that read it (embed, answer) are deployed; see
# README "First deployment".

resource "google_secret_manager_secret" "openai_api_key" {
  secret_id = var.openai_secret_id
  project   = var.project_id
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}
