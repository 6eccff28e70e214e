# File drop: a .txt or .json object finalized under input_prefix in the input bucket becomes a
# synthesis (the function ignores other objects). Eventarc delivers it to the event service.
resource "google_eventarc_trigger" "file_drop" {
  name            = "${var.name_prefix}-file-drop"
  project         = var.project_id
  location        = var.region
  service_account = google_service_account.this["trigger"].email

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }
  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.this["input"].name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.this["event"].name
      region  = var.region
      path    = "/"
    }
  }

  depends_on = [
    google_project_iam_member.gcs_publishes_events,
    google_project_iam_member.trigger_receives_events,
    google_cloud_run_v2_service_iam_member.event_invokers,
  ]
}
