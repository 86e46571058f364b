# Observability: log-based metrics over the JSON lines the functions write (shared/log.py),
# alert policies, and one dashboard.
#
# The functions log one JSON object per line; Cloud Logging stores it as jsonPayload. The
# fields the metrics read are emitted by:
#   "step finished"          shared/pipeline/runner.py   step, outcome, duration_ms
#   "version failed"         shared/pipeline/steps.py    error_code, version_id
#   "message dead-lettered"  shared/pipeline/steps.py    version_id, attempts
#   "answer finished"        shared/answering/service.py outcome, duration_ms
# tests/integration/test_monitoring_logs.py runs those code paths and checks that every
# jsonPayload field a metric filters or extracts on is in the lines they write. 5xx come
# from Cloud Run's own request log (httpRequest.status), which also sees timeouts and crashes
# no application line reports.

locals {
  # Application lines of this deployment's functions (Cloud Run services "<prefix>-*").
  app_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\""

  log_metrics = {
    versions_failed = {
      description = "Document versions that failed, by error code."
      filter      = "${local.app_logs} AND jsonPayload.message=\"version failed\""
      kind        = "DELTA"
      value_type  = "INT64"
      value       = null
      labels      = { error_code = "EXTRACT(jsonPayload.error_code)" }
    }
    dead_lettered = {
      description = "Pipeline messages that ran out of delivery attempts."
      filter      = "${local.app_logs} AND jsonPayload.message=\"message dead-lettered\""
      kind        = "DELTA"
      value_type  = "INT64"
      value       = null
      labels      = {}
    }
    step_latency = {
      description = "Duration of each pipeline step attempt (parse, chunk, embed, index), by outcome."
      filter      = "${local.app_logs} AND jsonPayload.message=\"step finished\""
      kind        = "DELTA"
      value_type  = "DISTRIBUTION"
      value       = "EXTRACT(jsonPayload.duration_ms)"
      labels = {
        step    = "EXTRACT(jsonPayload.step)"
        outcome = "EXTRACT(jsonPayload.outcome)"
      }
    }
    answer_latency = {
      description = "Time from a prepared question to its last token, by outcome."
      filter      = "${local.app_logs} AND jsonPayload.message=\"answer finished\""
      kind        = "DELTA"
      value_type  = "DISTRIBUTION"
      value       = "EXTRACT(jsonPayload.duration_ms)"
      labels      = { outcome = "EXTRACT(jsonPayload.outcome)" }
    }
    http_5xx = {
      description = "Requests answered with a 5xx status (Cloud Run request log), by service."
      filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\" AND log_id(\"run.googleapis.com/requests\") AND httpRequest.status>=500"
      kind        = "DELTA"
      value_type  = "INT64"
      value       = null
      labels      = { service = "EXTRACT(resource.labels.service_name)" }
    }
  }

  # Subscriptions whose backlog age is alerted on: the pipeline steps and the dead letters.
  watched_subscriptions = merge(
    { for key, _ in local.push_steps : key => google_pubsub_subscription.step[key].name },
    { dead_letter = google_pubsub_subscription.dead_letter.name },
  )

  metric_type = { for key, _ in local.log_metrics : key => "logging.googleapis.com/user/${var.name_prefix}_${key}" }
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  name        = "${var.name_prefix}_${each.key}"
  project     = var.project_id
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = each.value.kind
    value_type  = each.value.value_type
    unit        = each.value.value_type == "DISTRIBUTION" ? "ms" : "1"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key        = labels.key
        value_type = "STRING"
      }
    }
  }

  value_extractor  = each.value.value
  label_extractors = each.value.labels

  dynamic "bucket_options" {
    for_each = each.value.value_type == "DISTRIBUTION" ? [1] : []
    content {
      # 10 ms .. about 50 min in 26 doubling buckets.
      exponential_buckets {
        num_finite_buckets = 26
        growth_factor      = 2
        scale              = 10
      }
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_monitoring_alert_policy" "dead_letter" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: a pipeline message was dead-lettered"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "dead-lettered messages > 0"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type["dead_lettered"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "A pipeline message ran out of delivery attempts; the dead_letter function failed its version with the last error. Look for \"message dead-lettered\" and \"version failed\" in the logs."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.metric]
}

resource "google_monitoring_alert_policy" "failed_versions" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: document versions failing"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "failed versions per hour > ${var.alert_failed_versions_per_hour}"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type["versions_failed"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_failed_versions_per_hour
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "More document versions failed in the last hour than expected; the versions_failed metric's error_code label says why (bad input vs. delivery_failed, event_expired, stalled)."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.metric]
}

resource "google_monitoring_alert_policy" "http_5xx" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: API 5xx rate"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "5xx share of requests > ${var.alert_5xx_ratio}"
    condition_threshold {
      # Cloud Run's request count: the ratio of 5xx to all requests of our services.
      filter             = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_5xx_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "The API answers too many requests with a 5xx. The http_5xx log metric shows which service; look for \"unhandled error\" lines and timeouts in its logs."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  for_each = local.watched_subscriptions

  project               = var.project_id
  display_name          = "${var.name_prefix}: ${each.key} messages waiting too long"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "oldest unacked message on ${each.value} > ${var.alert_oldest_unacked_seconds} s"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${each.value}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Messages on this subscription are not being acknowledged: the function is failing, too slow, or cannot be reached. Its versions stay in progress until the sweep or the dead letter ends them."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_dashboard" "ragline" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: pipeline and answers"
    mosaicLayout = {
      columns = 48
      tiles = [
        for index, tile in [
          { title = "Step duration p95 (ms), by step", metric = "step_latency", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.step"] },
          { title = "Answer duration p95 (ms), by outcome", metric = "answer_latency", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.outcome"] },
          { title = "Failed versions, by error code", metric = "versions_failed", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.label.error_code"] },
          { title = "Dead-lettered messages", metric = "dead_lettered", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = [] },
          { title = "5xx responses, by service", metric = "http_5xx", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", by = ["metric.label.service"] },
          ] : {
          xPos   = (index % 2) * 24
          yPos   = floor(index / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = tile.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "metric.type=\"${local.metric_type[tile.metric]}\" AND resource.type=\"cloud_run_revision\""
                    aggregation = {
                      alignmentPeriod    = "300s"
                      perSeriesAligner   = tile.aligner
                      crossSeriesReducer = tile.reducer
                      groupByFields      = tile.by
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_logging_metric.metric]
}
