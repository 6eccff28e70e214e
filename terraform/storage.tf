# Two buckets from one definition. Inputs are separate from outputs because an Eventarc storage
# trigger fires for every object in its bucket: with one bucket, every audio file and manifest the
# function writes would invoke the event service again (ignored, but an instance start each).
locals {
  buckets = {
    output = { retention_days = var.output_retention_days }
    input  = { retention_days = var.input_retention_days }
  }
}

resource "google_storage_bucket" "this" {
  #checkov:skip=CKV_GCP_62:Access logs would record every synthesis twice; Cloud Audit Logs (data access) cover object reads and writes when wanted.
  #checkov:skip=CKV_GCP_78:Versioning off by design: objects are written once (if_generation_match=0) and expire; versions would only keep expired audio.
  for_each = local.buckets

  name          = "${var.project_id}-${var.name_prefix}-${each.key}"
  project       = var.project_id
  location      = upper(var.region)
  storage_class = "STANDARD"
  force_destroy = false

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  lifecycle_rule {
    condition {
      age = each.value.retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}
