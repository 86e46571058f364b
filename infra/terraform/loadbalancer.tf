# Global external Application Load Balancer in front of the public API (set
# enable_load_balancer = false to use the functions' own URLs instead). Serverless NEGs point at
# upload, manage, answer and mcp; the URL map routes by path (and method) exactly as the local stack
# mounts the functions:
#
#   POST /v1/knowledge-bases/{id}/documents      -> upload
#        /v1/knowledge-bases/{id}/uploads[/...]  -> upload
#        /v1/ask, /v1/ask/stream, /v1/retrieve   -> answer
#        /v1/turns/*, /v1/sessions/*             -> answer
#        /v1/knowledge-bases/{id}/evaluations    -> answer
#        /v1/evaluations/*                       -> answer
#        /v1/openai/* (OpenAI-compatible chat)   -> answer
#        /mcp                                    -> mcp
#   everything else (rest of /v1, /healthz)      -> manage
#
# The path reaches the function unchanged, so handlers route on the full /v1/... path.

locals {
  lb_enabled   = var.enable_load_balancer
  lb_functions = local.lb_enabled ? { for key, fn in local.functions : key => fn if fn.public } : {}
}

resource "google_compute_global_address" "api" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api"

  depends_on = [google_project_service.api]
}

resource "google_compute_region_network_endpoint_group" "api" {
  for_each = local.lb_functions

  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}-neg"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_function {
    function = google_cloudfunctions2_function.function[each.key].name
  }
}

# Serverless NEG backends take no health check, port or timeout; the function's own timeout
# bounds requests (answer streams for up to its timeout_seconds).
resource "google_compute_backend_service" "api" {
  for_each = local.lb_functions

  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}-backend"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = var.lb_security_policy

  backend {
    group = google_compute_region_network_endpoint_group.api[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "api" {
  count = local.lb_enabled ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}-api"
  default_service = google_compute_backend_service.api[local.lb_default_function].id

  host_rule {
    hosts        = ["*"]
    path_matcher = "api"
  }

  path_matcher {
    name            = "api"
    default_service = google_compute_backend_service.api[local.lb_default_function].id

    dynamic "route_rules" {
      for_each = local.lb_routes
      content {
        priority = route_rules.value.priority
        service  = google_compute_backend_service.api[route_rules.value.function].id

        # match_rules are OR-ed; within one, the path and the method header are AND-ed.
        dynamic "match_rules" {
          for_each = route_rules.value.templates
          content {
            path_template_match = match_rules.value
            dynamic "header_matches" {
              for_each = route_rules.value.method == null ? [] : [route_rules.value.method]
              content {
                header_name = ":method"
                exact_match = header_matches.value
              }
            }
          }
        }

        dynamic "match_rules" {
          for_each = route_rules.value.prefixes
          content {
            prefix_match = match_rules.value
          }
        }

        dynamic "match_rules" {
          for_each = route_rules.value.paths
          content {
            full_path_match = match_rules.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(var.lb_domains) > 0
      error_message = "enable_load_balancer needs lb_domains (the HTTPS certificate's domains); or set enable_load_balancer = false."
    }
  }
}

resource "google_compute_managed_ssl_certificate" "api" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api-cert"

  managed {
    domains = var.lb_domains
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "api" {
  count = local.lb_enabled ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}-api-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "api" {
  count = local.lb_enabled ? 1 : 0

  project          = var.project_id
  name             = "${var.name_prefix}-api-https"
  url_map          = google_compute_url_map.api[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.api[0].id]
  ssl_policy       = google_compute_ssl_policy.api[0].id
}

resource "google_compute_global_forwarding_rule" "https" {
  count = local.lb_enabled ? 1 : 0

  project               = var.project_id
  name                  = "${var.name_prefix}-api-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.api[0].id
  port_range            = "443"
  target                = google_compute_target_https_proxy.api[0].id
}

# Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "http_redirect" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api-http-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "http_redirect" {
  count = local.lb_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-api-http"
  url_map = google_compute_url_map.http_redirect[0].id
}

resource "google_compute_global_forwarding_rule" "http_redirect" {
  count = local.lb_enabled ? 1 : 0

  project               = var.project_id
  name                  = "${var.name_prefix}-api-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.api[0].id
  port_range            = "80"
  target                = google_compute_target_http_proxy.http_redirect[0].id
}
