# Log-based metrics from the function's structured log lines (one per request or event, and one per
# model load: README "Logs"), a dashboard and alert policies. Cloud Logging lifts a line's
# httpRequest into the entry's own httpRequest and keeps the other fields under jsonPayload;
# tests/deploy/test_observability.py runs the function and checks every field named here against
# the lines it really writes.
locals {
  run_logs   = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-(http|event)$\""
  http_lines = "${local.run_logs} AND jsonPayload.logger=\"function.request\""
  metric     = "logging.googleapis.com/user/${var.name_prefix}"
  # Milliseconds from 1 ms to ~2.3 h, 20% apart.
  ms_buckets = { count = 64, growth = 1.2, scale = 1 }
}

resource "google_logging_metric" "requests" {
  project     = var.project_id
  name        = "${var.name_prefix}/requests"
  description = "HTTP requests by route, status, error code and API key id."
  filter      = local.http_lines
  label_extractors = {
    route  = "REGEXP_EXTRACT(httpRequest.requestUrl, \"^(/synthesize|/v1/audio/speech|/voices|/healthz?)/?$\")"
    status = "EXTRACT(httpRequest.status)"
    error  = "EXTRACT(jsonPayload.error)"
    key_id = "EXTRACT(jsonPayload.key_id)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key = "route"
    }
    labels {
      key = "status"
    }
    labels {
      key = "error"
    }
    labels {
      key = "key_id"
    }
  }
}

resource "google_logging_metric" "request_latency" {
  project         = var.project_id
  name            = "${var.name_prefix}/request_latency"
  description     = "HTTP request latency in the function (ms), by route and status."
  filter          = local.http_lines
  value_extractor = "EXTRACT(jsonPayload.latency_ms)"
  label_extractors = {
    route  = "REGEXP_EXTRACT(httpRequest.requestUrl, \"^(/synthesize|/v1/audio/speech|/voices|/healthz?)/?$\")"
    status = "EXTRACT(httpRequest.status)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    labels {
      key = "route"
    }
    labels {
      key = "status"
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.ms_buckets.count
      growth_factor      = local.ms_buckets.growth
      scale              = local.ms_buckets.scale
    }
  }
}

# Distributions per engine: synthesis time and audio seconds of audio made (not found in storage),
# and model load time (one per cold start).
locals {
  engine_distributions = {
    synthesis_time = {
      description = "Synthesis time (ms) of audio made rather than found in storage, per engine (HTTP and events)."
      filter      = "${local.run_logs} AND jsonPayload.synthesis_ms:*"
      field       = "jsonPayload.synthesis_ms"
      unit        = "ms"
      buckets     = local.ms_buckets
    }
    audio_seconds = {
      description = "Seconds of audio synthesized (not found in storage), per engine."
      filter      = "${local.run_logs} AND jsonPayload.synthesis_ms:*"
      field       = "jsonPayload.duration_s"
      unit        = "s"
      buckets     = { count = 48, growth = 1.3, scale = 0.1 }
    }
    model_loads = {
      description = "Model load time (ms): one per instance and engine, at its cold start."
      filter      = "${local.run_logs} AND jsonPayload.logger=\"function.pipeline\" AND jsonPayload.cold_start=true AND jsonPayload.load_ms:*"
      field       = "jsonPayload.load_ms"
      unit        = "ms"
      buckets     = local.ms_buckets
    }
  }
}

resource "google_logging_metric" "per_engine" {
  for_each        = local.engine_distributions
  project         = var.project_id
  name            = "${var.name_prefix}/${each.key}"
  description     = each.value.description
  filter          = each.value.filter
  value_extractor = "EXTRACT(${each.value.field})"
  label_extractors = {
    engine = "EXTRACT(jsonPayload.engine)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = each.value.unit
    labels {
      key = "engine"
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = each.value.buckets.count
      growth_factor      = each.value.buckets.growth
      scale              = each.value.buckets.scale
    }
  }
}

resource "google_logging_metric" "characters" {
  project         = var.project_id
  name            = "${var.name_prefix}/characters"
  description     = "Characters per answered request or event (synthesized or cached), per engine."
  filter          = "${local.run_logs} AND jsonPayload.chars:*"
  value_extractor = "EXTRACT(jsonPayload.chars)"
  label_extractors = {
    engine = "EXTRACT(jsonPayload.engine)"
    cached = "EXTRACT(jsonPayload.cached)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key = "engine"
    }
    labels {
      key = "cached"
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }
}

resource "google_logging_metric" "cold_starts" {
  project     = var.project_id
  name        = "${var.name_prefix}/cold_starts"
  description = "Cold starts: an instance's first request for an engine, which loads its model."
  filter      = "${local.run_logs} AND jsonPayload.logger=\"function.pipeline\" AND jsonPayload.cold_start=true AND jsonPayload.load_ms:*"
  label_extractors = {
    engine = "EXTRACT(jsonPayload.engine)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key = "engine"
    }
  }
}

resource "google_logging_metric" "cache_lookups" {
  project     = var.project_id
  name        = "${var.name_prefix}/cache_lookups"
  description = "Answered syntheses by whether the audio was already stored (cached=true) and engine."
  filter      = "${local.run_logs} AND jsonPayload.cached:*"
  label_extractors = {
    cached = "EXTRACT(jsonPayload.cached)"
    engine = "EXTRACT(jsonPayload.engine)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key = "cached"
    }
    labels {
      key = "engine"
    }
  }
}

resource "google_logging_metric" "events" {
  project     = var.project_id
  name        = "${var.name_prefix}/events"
  description = "Events (Pub/Sub messages, dropped files) by outcome (done, duplicate, failed, ignored, retry) and error code."
  filter      = "${local.run_logs} AND jsonPayload.logger=\"function.event\" AND jsonPayload.outcome:*"
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
    error   = "EXTRACT(jsonPayload.error)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key = "outcome"
    }
    labels {
      key = "error"
    }
  }
}

resource "google_logging_metric" "storage_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}/storage_errors"
  description = "Requests and events that found object storage unavailable (HTTP 503, event retried)."
  filter      = "${local.run_logs} AND jsonPayload.error=\"storage_unavailable\""
  label_extractors = {
    logger = "EXTRACT(jsonPayload.logger)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key = "logger"
    }
  }
}

resource "google_monitoring_dashboard" "this" {
  project = var.project_id
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    name_prefix              = var.name_prefix
    metric                   = local.metric
    promql                   = "logging_googleapis_com:user_${replace(var.name_prefix, "-", "_")}"
    http_service             = "${var.name_prefix}-http"
    max_instances            = var.http_max_instances
    cpu                      = var.cpu
    requests_subscription    = google_pubsub_subscription.push["requests"].name
    dead_letter_subscription = google_pubsub_subscription.dead_letters.name
  })
  depends_on = [
    google_logging_metric.requests,
    google_logging_metric.request_latency,
    google_logging_metric.per_engine,
    google_logging_metric.cold_starts,
    google_logging_metric.cache_lookups,
    google_logging_metric.events,
  ]
}

# --- alerts ------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "error_ratio" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: HTTP 5xx ratio above ${var.alert_error_ratio * 100}%"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "5xx / all requests, 5 min"
    condition_threshold {
      filter             = "metric.type=\"${local.metric}/requests\" AND resource.type=\"cloud_run_revision\" AND metric.label.status=monitoring.regex.full_match(\"5..\")"
      denominator_filter = "metric.type=\"${local.metric}/requests\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_error_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    content   = "More than ${var.alert_error_ratio * 100}% of HTTP requests answered 5xx. The request log lines (jsonPayload.logger=\"function.request\", severity ERROR) carry error and cause: model_unavailable or storage_unavailable are retried by callers (Retry-After); internal is a bug with a stack trace in Error Reporting."
    mime_type = "text/markdown"
  }
  depends_on = [google_logging_metric.requests]
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: HTTP p95 latency above ${var.alert_latency_share * 100}% of the ${var.http_timeout_s} s timeout"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "p95 request latency, 5 min"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/request_latency\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_latency_share * var.http_timeout_s * 1000
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
      }
    }
  }
  documentation {
    content   = "Requests take a large share of the service timeout: longer texts, cold starts (model_loads), or instances pinned at max_instances queueing requests."
    mime_type = "text/markdown"
  }
  depends_on = [google_logging_metric.request_latency]
}

resource "google_monitoring_alert_policy" "instances_pinned" {
  for_each              = local.services
  project               = var.project_id
  display_name          = "${var.name_prefix}-${each.key}: instances at max_instances (${each.value.max_instances})"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "instance count at its maximum for 10 min"
    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"${var.name_prefix}-${each.key}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.max_instances - 0.5
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    content   = "Every instance the service may start is busy (one request each): new requests queue, then fail with 429/503. Raise ${each.key}_max_instances or lower per-caller limits."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: messages in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "undelivered dead letters > 0"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letters.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  documentation {
    content   = "A request message failed max_delivery_attempts times. Pull it from the dead-letter subscription; the event's log lines (jsonPayload.event_id) say why (outcome retry, error)."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "storage_errors" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: object storage errors"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "storage_unavailable in the log, 5 min"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/storage_errors\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    content   = "The function could not read or write the output bucket (HTTP 503 storage_unavailable, events retried): bucket deleted, IAM changed, or a Cloud Storage incident."
    mime_type = "text/markdown"
  }
  depends_on = [google_logging_metric.storage_errors]
}
