output "http_url" {
  description = "HTTPS endpoint of the HTTP service (POST /synthesize, POST /v1/audio/speech, GET /voices)."
  value       = google_cloud_run_v2_service.this["http"].uri
}

output "event_url" {
  description = "Endpoint of the event service (internal ingress: Pub/Sub and Eventarc only)."
  value       = google_cloud_run_v2_service.this["event"].uri
}

output "output_bucket" {
  description = "Bucket holding the audio and manifests."
  value       = google_storage_bucket.this["output"].name
}

output "output_uri" {
  description = "Where the function writes (TTS_OUTPUT_URI)."
  value       = local.function_env.TTS_OUTPUT_URI
}

output "input_bucket" {
  description = "Bucket whose objects under input_prefix become syntheses."
  value       = google_storage_bucket.this["input"].name
}

output "request_topic" {
  description = "Pub/Sub topic taking synthesis requests as JSON messages."
  value       = google_pubsub_topic.this["requests"].name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding requests that exhausted their deliveries."
  value       = google_pubsub_subscription.dead_letters.name
}

output "runtime_service_account" {
  description = "Identity the services run as."
  value       = google_service_account.this["runtime"].email
}

output "instance_memory" {
  description = "Memory per instance: var.memory, or what the engines need (local.engine_memory_mib)."
  value       = local.memory
}

output "lb_ip" {
  description = "The load balancer's address (lb_domains set): point the domains' A records here; the managed certificate is issued once they resolve."
  value       = local.load_balancer ? google_compute_global_address.http["http"].address : null
}

output "api_keys_secret" {
  description = "Secret Manager secret holding the hashed API keys (auth_mode api_key or both): add keys.json as a version."
  value       = local.api_keys_enabled ? google_secret_manager_secret.api_keys[0].secret_id : null
}

output "job_results_topic" {
  description = "Pub/Sub topic with one message per finished job (job_id, status, uri, manifest)."
  value       = google_pubsub_topic.this["job_results"].name
}

output "job_results_subscription" {
  description = "Pull subscription on the job results topic."
  value       = google_pubsub_subscription.job_results.name
}
