# Pub/Sub wiring of the pipeline.
#
# Each Pub/Sub-fed function (parse, chunk, index) is deployed as a private HTTP function and
# fed by our OWN push subscription rather than an Eventarc Pub/Sub trigger, because only a
# subscription we own can carry a dead-letter policy and a retry policy. Pub/Sub pushes the
# standard envelope {"message": {...}, "subscription": ...}; functions-framework turns that raw
# push body into a google.cloud.pubsub.topic.v1.messagePublished CloudEvent for
# @functions_framework.cloud_event targets. The topic is appended to the push URL path so the
# framework can fill in the CloudEvent source (it parses projects/*/topics/* from the path).
#
# After max_delivery_attempts failed pushes (non-2xx or timeout) a message goes to the
# dead-letter topic, whose own push subscription feeds the dead_letter function (retried, but
# never dead-lettered again).

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is sufficient for messages that carry ids only, never document content.
  for_each = local.topics

  name    = each.value
  project = var.project_id
  labels  = var.labels

  # Keep a week of messages so a subscription can be re-created or seeked after an incident.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

locals {
  # Pipeline steps fed by a push subscription with a dead-letter policy.
  push_steps = {
    for key, fn in local.functions : key => fn
    if fn.trigger == "pubsub" && fn.topic != "dead_letter"
  }
}

resource "google_pubsub_subscription" "step" {
  for_each = local.push_steps

  name    = "${google_pubsub_topic.topic[each.value.topic].name}-${replace(each.key, "_", "-")}"
  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].id
  labels  = var.labels

  # For push delivery the ack deadline is also the push request timeout: match the function's
  # timeout (Pub/Sub caps it at 600 s) so a slow but healthy run is not redelivered mid-flight.
  ack_deadline_seconds       = min(each.value.timeout, 600)
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.key].service_config[0].uri}/${google_pubsub_topic.topic[each.value.topic].id}"

    oidc_token {
      service_account_email = google_service_account.invoker["push"].email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "${var.retry_min_backoff_seconds}s"
    maximum_backoff = "${var.retry_max_backoff_seconds}s"
  }

  # Push subscriptions otherwise expire after 31 days without traffic.
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.invoker,
  ]
}

# The dead-letter topic's subscription: retried with backoff like the others, but with no
# dead-letter policy of its own (a failing DLQ handler keeps the message for the retention
# period instead of bouncing it around).
resource "google_pubsub_subscription" "dead_letter" {
  name    = "${google_pubsub_topic.topic["dead_letter"].name}-dead-letter"
  project = var.project_id
  topic   = google_pubsub_topic.topic["dead_letter"].id
  labels  = var.labels

  ack_deadline_seconds       = min(local.functions["dead_letter"].timeout, 600)
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function["dead_letter"].service_config[0].uri}/${google_pubsub_topic.topic["dead_letter"].id}"

    oidc_token {
      service_account_email = google_service_account.invoker["push"].email
      audience              = google_cloudfunctions2_function.function["dead_letter"].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "${var.retry_min_backoff_seconds}s"
    maximum_backoff = "${var.retry_max_backoff_seconds}s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}

# Dead lettering is done by the Pub/Sub service agent: it must be able to publish to the
# dead-letter topic and to acknowledge (subscribe) on every source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.topic["dead_letter"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = google_pubsub_subscription.step

  project      = var.project_id
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.pubsub.email}"
}
