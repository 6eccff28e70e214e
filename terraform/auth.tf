# API keys (auth_mode api_key or both): the function checks callers' keys against SHA-256 hashes
# kept in this secret, mounted into the HTTP service as a file. Terraform creates the secret, never
# its content: make keys with `python -m function.auth new --label NAME --file keys.json` and add
# the file as a version (`gcloud secrets versions add tts-api-keys --data-file=keys.json`) before
# the service is deployed; a later version (keys added or revoked) takes effect within 30 s.
locals {
  api_keys_enabled  = var.auth_mode != "iam"
  api_keys_dir      = "/secrets/api-keys"
  api_keys_filename = "keys.json"
  # TTS_API_KEYS_FILE: empty when keys are off (the function then checks nothing).
  api_keys_file = local.api_keys_enabled ? "${local.api_keys_dir}/${local.api_keys_filename}" : ""
  # TTS_API_KEY_BEARER: with IAM in front, Authorization carries Google's identity token.
  api_key_bearer = tostring(var.auth_mode == "api_key")
}

resource "google_secret_manager_secret" "api_keys" {
  count     = local.api_keys_enabled ? 1 : 0
  project   = var.project_id
  secret_id = "${var.name_prefix}-api-keys"
  labels    = { app = "serverless-tts" }

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_iam_member" "runtime_reads_api_keys" {
  count     = local.api_keys_enabled ? 1 : 0
  project   = var.project_id
  secret_id = google_secret_manager_secret.api_keys[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this["runtime"].member
}
