# Identities and least-privilege grants. One service account per function identity (both ingest
# deployments share "ingest"), plus invoker identities used only by the platform to call private
# functions. Every grant is on the specific resource where the API allows it; only Cloud SQL
# roles and the Eventarc receiver role are project-wide (there is no narrower scope for them).

resource "google_service_account" "function" {
  for_each = local.identities

  project      = var.project_id
  account_id   = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  display_name = "Ragline ${each.key} function"
  description  = "Runtime identity of the Ragline ${each.key} function."
}

resource "google_service_account" "invoker" {
  for_each = local.invokers

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}-invoker"
  display_name = "Ragline ${each.key} invoker"
  description  = each.value
}

resource "google_service_account" "build" {
  count = var.build_service_account_email == "" ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Ragline function builds"
  description  = "Cloud Build identity that builds the function images."
}

locals {
  build_service_account_email = coalesce(var.build_service_account_email, try(google_service_account.build[0].email, ""))

  # Cloud SQL: connect through the connector and log in as an IAM database user.
  sql_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]

  function_project_roles = {
    for pair in setproduct(keys(local.identities), local.sql_roles) :
    "${pair[0]}/${pair[1]}" => { identity = pair[0], role = pair[1] }
  }

  bucket_ids = {
    uploads = google_storage_bucket.uploads.name
    work    = google_storage_bucket.work.name
  }

  bucket_grants = merge([
    for identity, grants in local.identities : {
      for bucket, role in grants.buckets :
      "${identity}/${bucket}" => { identity = identity, bucket = bucket, role = role }
    }
  ]...)

  topic_grants = merge([
    for identity, grants in local.identities : {
      for topic in grants.publishes :
      "${identity}/${topic}" => { identity = identity, topic = topic }
    }
  ]...)

  # Identities that create embed tasks (chunk, sweep).
  embed_enqueuers = toset([for identity, grants in local.identities : identity if grants.enqueues_embed])

  # Identities that create webhook delivery tasks (webhooks).
  webhook_enqueuers = toset([for identity, grants in local.identities : identity if grants.enqueues_webhooks])

  # Identities that create source sync tasks (manage, sweep, sync).
  sync_enqueuers = toset([for identity, grants in local.identities : identity if grants.enqueues_sync])

  secret_grants = merge([
    for identity, grants in local.identities : {
      for secret in grants.secrets :
      "${identity}/${secret}" => { identity = identity, secret = secret }
    }
  ]...)

  # Who may invoke each function at the Cloud Run layer. The public API is open to allUsers
  # because browsers call it with Identity Platform ID tokens, which Cloud Run IAM does not
  # accept: the application authenticates every request itself (shared/api/authn.py: a
  # verified ID token, an API key or a single-use stream ticket; only /healthz answers
  # without one, and tests/integration/test_identity.py checks every route), and behind the
  # load balancer ingress is restricted to internal + load balancer traffic.
  run_invokers = {
    for key, fn in local.functions : key => (
      fn.public ? "allUsers" : "serviceAccount:${google_service_account.invoker[local.invoker_of_trigger[fn.trigger]].email}"
    )
  }
}

resource "google_project_iam_member" "function_sql" {
  for_each = local.function_project_roles

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.function[each.value.identity].email}"
}

resource "google_storage_bucket_iam_member" "function" {
  for_each = local.bucket_grants

  bucket = local.bucket_ids[each.value.bucket]
  role   = each.value.role
  member = "serviceAccount:${google_service_account.function[each.value.identity].email}"
}

resource "google_pubsub_topic_iam_member" "function_publisher" {
  for_each = local.topic_grants

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.function[each.value.identity].email}"
}

resource "google_secret_manager_secret_iam_member" "function_accessor" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = local.secrets[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.identity].email}"

  depends_on = [google_secret_manager_secret.openai_api_key]
}

# upload signs V4 URLs without a key file: IAM signBlob as itself needs Token Creator on itself.
resource "google_service_account_iam_member" "upload_sign_blob" {
  service_account_id = google_service_account.function["upload"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.function["upload"].email}"
}

# manage signs V4 download URLs of documents' files (GET /v1/documents/{id}/file) the same way.
resource "google_service_account_iam_member" "manage_sign_blob" {
  service_account_id = google_service_account.function["manage"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.function["manage"].email}"
}

# chunk and sweep enqueue embed tasks that carry an OIDC token of the tasks invoker: enqueuer on
# the queue only, and actAs on the tasks invoker only.
resource "google_cloud_tasks_queue_iam_member" "embed_enqueuer" {
  for_each = local.embed_enqueuers

  project  = var.project_id
  location = google_cloud_tasks_queue.embed.location
  name     = google_cloud_tasks_queue.embed.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_service_account_iam_member" "acts_as_tasks_invoker" {
  for_each = local.embed_enqueuers

  service_account_id = google_service_account.invoker["tasks"].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.key].email}"
}

# webhooks enqueues delivery tasks carrying an OIDC token of the tasks invoker, like chunk.
resource "google_cloud_tasks_queue_iam_member" "webhook_enqueuer" {
  for_each = local.webhook_enqueuers

  project  = var.project_id
  location = google_cloud_tasks_queue.webhooks.location
  name     = google_cloud_tasks_queue.webhooks.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_service_account_iam_member" "webhook_acts_as_tasks_invoker" {
  for_each = local.webhook_enqueuers

  service_account_id = google_service_account.invoker["tasks"].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.key].email}"
}

# manage, sweep and sync enqueue source sync tasks carrying an OIDC token of the tasks invoker.
resource "google_cloud_tasks_queue_iam_member" "sync_enqueuer" {
  for_each = local.sync_enqueuers

  project  = var.project_id
  location = google_cloud_tasks_queue.sync.location
  name     = google_cloud_tasks_queue.sync.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_service_account_iam_member" "sync_acts_as_tasks_invoker" {
  for_each = local.sync_enqueuers

  service_account_id = google_service_account.invoker["tasks"].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.key].email}"
}

# gcs sources: the sync function reads the buckets an operator lists in var.source_buckets
# (objectViewer on each, nothing else); the API refuses a gcs source of any other bucket.
resource "google_storage_bucket_iam_member" "source_reader" {
  for_each = toset(var.source_buckets)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function["sync"].email}"
}

# These grants were chunk-only resources before sweep; keep chunk's bindings in place.
moved {
  from = google_cloud_tasks_queue_iam_member.chunk_enqueuer
  to   = google_cloud_tasks_queue_iam_member.embed_enqueuer["chunk"]
}

moved {
  from = google_service_account_iam_member.chunk_acts_as_tasks_invoker
  to   = google_service_account_iam_member.acts_as_tasks_invoker["chunk"]
}

# Invocation rights on the Cloud Run services behind the gen2 functions.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.run_invokers

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = each.value
}

# Pub/Sub mints the push OIDC tokens as the push invoker (needed explicitly on projects
# created before April 2021; harmless after).
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.invoker["push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

# Eventarc storage triggers: the trigger identity receives events, and Cloud Storage's service
# agent publishes them to the Pub/Sub transport Eventarc creates.
resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.invoker["eventarc"].email}"
}

resource "google_project_iam_member" "gcs_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Function builds run as a dedicated identity (the default Cloud Build identity is not relied on).
resource "google_project_iam_member" "build" {
  for_each = var.build_service_account_email == "" ? toset([
    "roles/cloudbuild.builds.builder",
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ]) : toset([])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build[0].email}"
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.build_service_account_email}"
}

# Migrations connect as their own IAM database user.
resource "google_project_iam_member" "migrator_sql" {
  for_each = var.migrator_service_account_email == "" ? toset([]) : toset(local.sql_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${var.migrator_service_account_email}"
}
