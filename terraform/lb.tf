# Optional (lb_domains set): a global external Application Load Balancer in front of the HTTP
# service, through a serverless NEG, with a Google-managed certificate and a Cloud Armor policy
# that limits each caller before a request ever reaches (or starts) an instance. The service then
# takes internal and load-balancer traffic only (main.tf, local.services.http.ingress).
locals {
  load_balancer = length(var.lb_domains) > 0
  lb            = local.load_balancer ? ["http"] : []
}

resource "google_compute_region_network_endpoint_group" "http" {
  for_each              = toset(local.lb)
  name                  = "${var.name_prefix}-http-neg"
  project               = var.project_id
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = google_cloud_run_v2_service.this["http"].name
  }
}

resource "google_compute_backend_service" "http" {
  for_each              = toset(local.lb)
  name                  = "${var.name_prefix}-http-backend"
  project               = var.project_id
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.http["http"].id

  backend {
    group = google_compute_region_network_endpoint_group.http["http"].id
  }

  # Every request (429s included) in the load balancer's own log.
  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "http" {
  for_each        = toset(local.lb)
  name            = "${var.name_prefix}-http"
  project         = var.project_id
  default_service = google_compute_backend_service.http["http"].id
}

resource "google_compute_managed_ssl_certificate" "http" {
  for_each = toset(local.lb)
  name     = "${var.name_prefix}-http-cert"
  project  = var.project_id
  managed {
    domains = var.lb_domains
  }
}

resource "google_compute_ssl_policy" "http" {
  for_each        = toset(local.lb)
  name            = "${var.name_prefix}-tls12"
  project         = var.project_id
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "http" {
  for_each         = toset(local.lb)
  name             = "${var.name_prefix}-https"
  project          = var.project_id
  url_map          = google_compute_url_map.http["http"].id
  ssl_certificates = [google_compute_managed_ssl_certificate.http["http"].id]
  ssl_policy       = google_compute_ssl_policy.http["http"].id
}

resource "google_compute_global_address" "http" {
  for_each = toset(local.lb)
  name     = "${var.name_prefix}-http-ip"
  project  = var.project_id
}

resource "google_compute_global_forwarding_rule" "http" {
  for_each              = toset(local.lb)
  name                  = "${var.name_prefix}-https"
  project               = var.project_id
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.http["http"].id
  port_range            = "443"
  target                = google_compute_target_https_proxy.http["http"].id
}

# Per-caller throttles, first match wins: a key in X-API-Key, else in Authorization (Bearer key, or
# the identity token under IAM), else the client IP. Each key gets rate_limit_per_key requests per
# rate_limit_interval_s; beyond, 429 until its window has room again. Cloud Armor sends no
# Retry-After: a client backs off for up to rate_limit_interval_s (the openai SDK retries 429s
# with exponential backoff).
resource "google_compute_security_policy" "http" {
  for_each    = toset(local.lb)
  name        = "${var.name_prefix}-http-callers"
  project     = var.project_id
  description = "serverless-tts: per-API-key and per-IP rate limits"
  type        = "CLOUD_ARMOR"

  rule {
    description = "Log4j (CVE-2021-44228) lookups: nothing here runs Java, but the probes are refused before an instance starts."
    action      = "deny(403)"
    priority    = 900
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  # One throttle per key header, keyed on its value: X-API-Key first, then Authorization (a Bearer
  # API key, or the IAM identity token).
  dynamic "rule" {
    for_each = { "x-api-key" = 1000, "authorization" = 1010 }
    content {
      description = "Per ${rule.key} header value."
      action      = "throttle"
      priority    = rule.value
      match {
        expr {
          expression = "has(request.headers['${rule.key}'])"
        }
      }
      rate_limit_options {
        conform_action      = "allow"
        exceed_action       = "deny(429)"
        enforce_on_key      = "HTTP_HEADER"
        enforce_on_key_name = rule.key
        rate_limit_threshold {
          count        = var.rate_limit_per_key
          interval_sec = var.rate_limit_interval_s
        }
      }
    }
  }

  rule {
    description = "Per client IP for callers without a key header (health checks, refused callers)."
    action      = "throttle"
    priority    = 2000
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.rate_limit_per_ip
        interval_sec = var.rate_limit_interval_s
      }
    }
  }

  rule {
    description = "Default: allow (the rules above decide)."
    action      = "allow"
    priority    = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}
