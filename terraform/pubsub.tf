# Requests as messages: publish {"text": ...} to the request topic; a push subscription delivers
# each to the event service. Failures are retried with backoff, then dead-lettered.
locals {
  topics = {
    requests    = "Synthesis requests (JSON bodies) for the event service"
    dead_letter = "Requests that failed max_delivery_attempts times"
    job_parts   = "Parts of long-document jobs, one message each (published by the function)"
    job_results = "Job notifications: {job_id, status, uri, manifest} once a job succeeds or fails"
  }
  # Topics pushed to the event service, and their subscriptions' names.
  push_subscriptions = {
    requests  = "requests-push"
    job_parts = "job-parts-push"
  }
  # What each push subscription delivers. A job's part carries the tts_job_part attribute (the
  # function publishes parts to job_parts only); the function checks every part against its job's
  # record, and the requests subscription does not even deliver a message claiming to be one.
  push_filters = {
    requests  = "NOT attributes:tts_job_part"
    job_parts = "attributes:tts_job_part"
  }

  # What the function needs to publish jobs (docs/jobs.md), for both services' environment:
  # each service's env (terraform/run.tf) merges it.
  jobs_env = {
    TTS_JOBS_PARTS_TOPIC   = google_pubsub_topic.this["job_parts"].id
    TTS_JOBS_RESULTS_TOPIC = google_pubsub_topic.this["job_results"].id
    TTS_JOB_MAX_CHARS      = tostring(var.job_max_chars)
  }
}

resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; messages hold request text that also lands in the (Google-managed encrypted) output bucket, so a CMEK here alone would add cost without closing a gap.
  for_each                   = local.topics
  name                       = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  project                    = var.project_id
  message_retention_duration = "604800s"
  labels                     = { app = "serverless-tts" }
  depends_on                 = [google_project_service.this]
}

# Requests, and the parts of jobs, each pushed to the event service: a part is a request the
# function published, so the platform runs as many at once as the event service's max_instances
# allows, with the same deadline, retries and dead letters (a part that keeps failing is recorded
# as failed at the last attempt, and its job fails with it, as a request's manifest records it).
resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions
  name     = "${var.name_prefix}-${each.value}"
  project  = var.project_id
  topic    = google_pubsub_topic.this[each.key].id
  # A filter cannot change in place: adding it replaces the subscription (drain it first: docs/jobs.md).
  filter = local.push_filters[each.key]

  # For push, the ack deadline is how long Pub/Sub waits for the HTTP response: at least the event
  # service's timeout, so a synthesis is never redelivered while it is still running.
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = google_cloud_run_v2_service.this["event"].uri
    oidc_token {
      service_account_email = google_service_account.this["push"].email
      audience              = google_cloud_run_v2_service.this["event"].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.this["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    # Never expire for inactivity: a quiet month must not delete the request path.
    ttl = ""
  }
}

moved {
  from = google_pubsub_subscription.requests
  to   = google_pubsub_subscription.push["requests"]
}

# A topic without a subscription drops what is published to it: this one keeps dead letters for
# inspection (gcloud pubsub subscriptions pull ...).
resource "google_pubsub_subscription" "dead_letters" {
  name                       = "${var.name_prefix}-dead-letters"
  project                    = var.project_id
  topic                      = google_pubsub_topic.this["dead_letter"].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Job notifications are kept for a week for whoever pulls them (as Polly's SNS topic notifies);
# subscribe your own push or pull subscriptions to the topic as well.
resource "google_pubsub_subscription" "job_results" {
  name                       = "${var.name_prefix}-job-results"
  project                    = var.project_id
  topic                      = google_pubsub_topic.this["job_results"].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}
