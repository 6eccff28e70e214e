# Identities: one per job, each with only what that job needs.
locals {
  service_accounts = {
    runtime = "Runs the serverless-tts Cloud Run services"
    push    = "Pub/Sub push subscription: invokes the event service"
    trigger = "Eventarc file-drop trigger: invokes the event service"
  }
  role_prefix  = replace(var.name_prefix, "-", "_")
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Custom roles because the predefined ones miss or exceed this: objectCreator lacks get (the
  # function checks for existing audio and reads it back), objectViewer adds list, objectUser adds
  # list, update and delete. Writes use if_generation_match=0, so overwriting is never needed.
  custom_roles = {
    # list: a job's progress is the count of its part manifests (jobs/<id>/parts/).
    output = ["storage.objects.create", "storage.objects.get", "storage.objects.list"]
    input  = ["storage.objects.get"]
  }
}

resource "google_service_account" "this" {
  for_each     = local.service_accounts
  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = each.value
  depends_on   = [google_project_service.this]
}

resource "google_project_iam_custom_role" "objects" {
  for_each    = local.custom_roles
  project     = var.project_id
  role_id     = "${local.role_prefix}_${each.key}_objects"
  title       = "serverless-tts ${each.key} objects"
  description = "What the serverless-tts runtime needs on its ${each.key} bucket."
  permissions = each.value
}

# Runtime: create + get on the output bucket, get on the input bucket, nothing project-wide.
resource "google_storage_bucket_iam_member" "runtime" {
  for_each = local.custom_roles
  bucket   = google_storage_bucket.this[each.key].name
  role     = google_project_iam_custom_role.objects[each.key].name
  member   = google_service_account.this["runtime"].member
}

# V4 signed URLs: on Cloud Run there is no private key, so the runtime signs through the IAM
# signBlob API as itself, which needs Token Creator on its own account (and on nothing else).
resource "google_service_account_iam_member" "runtime_signs_as_itself" {
  service_account_id = google_service_account.this["runtime"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.this["runtime"].member
}

# HTTP callers: only the members listed (or everyone, when allow_unauthenticated is true).
resource "google_cloud_run_v2_service_iam_member" "http_invokers" {
  for_each = toset(var.allow_unauthenticated ? ["allUsers"] : var.http_invokers)
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this["http"].name
  role     = "roles/run.invoker"
  member   = each.value
}

# The event service: invoked by the push subscription's and the trigger's identities only.
resource "google_cloud_run_v2_service_iam_member" "event_invokers" {
  for_each = toset(["push", "trigger"])
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this["event"].name
  role     = "roles/run.invoker"
  member   = google_service_account.this[each.key].member
}

# Pub/Sub mints the push request's OIDC token as the push account.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.this["push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead-lettering: the Pub/Sub service agent forwards the message and acks the original.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.this["dead_letter"].id
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = google_pubsub_subscription.push
  project      = var.project_id
  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

moved {
  from = google_pubsub_subscription_iam_member.dead_letter_subscriber
  to   = google_pubsub_subscription_iam_member.dead_letter_subscriber["requests"]
}

# Jobs: the function publishes parts and notifications, on these two topics only.
resource "google_pubsub_topic_iam_member" "runtime_publishes_jobs" {
  for_each = toset(["job_parts", "job_results"])
  project  = var.project_id
  topic    = google_pubsub_topic.this[each.key].id
  role     = "roles/pubsub.publisher"
  member   = google_service_account.this["runtime"].member
}

# Eventarc storage triggers: Cloud Storage publishes the object events through Pub/Sub as its
# service agent, and the trigger's identity must be allowed to receive events.
data "google_storage_project_service_account" "gcs" {
  project    = var.project_id
  depends_on = [google_project_service.this]
}

resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.this["trigger"].member
}
