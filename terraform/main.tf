# serverless-tts on Google Cloud: two Cloud Run services from one image and one definition
# (run.tf), an output bucket and an input drop bucket (storage.tf), a Pub/Sub request path with
# dead-lettering (pubsub.tf), a file-drop Eventarc trigger (eventarc.tf), least-privilege
# identities (iam.tf).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Must match the image: function.config.HEALTH_ROUTE and the Dockerfile's PORT/EXPOSE (tests check).
  health_route = "/healthz"
  port         = 8080

  # One entry per Cloud Run service; everything else about them is shared (run.tf).
  services = {
    http = {
      timeout_s     = var.http_timeout_s
      min_instances = var.http_min_instances
      max_instances = var.http_max_instances
      # Reachable from the internet, but only with an identity token (IAM), unless allow_unauthenticated.
      ingress = "INGRESS_TRAFFIC_ALL"
      # functions-framework: which function to serve, and gunicorn's worker timeout.
      env = {
        FUNCTION_TARGET           = "synthesize"
        CLOUD_RUN_TIMEOUT_SECONDS = tostring(var.http_timeout_s)
      }
    }
    event = {
      timeout_s     = var.event_timeout_s
      min_instances = var.event_min_instances
      max_instances = var.event_max_instances
      # Only Pub/Sub push and Eventarc (same project) call it.
      ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      env = {
        FUNCTION_TARGET           = "synthesize_event"
        CLOUD_RUN_TIMEOUT_SECONDS = tostring(var.event_timeout_s)
      }
    }
  }

  # The function's settings (function.config.Settings, prefix TTS_), the same on both services:
  # each service knows both timeouts, and each equals the platform timeout that enforces it.
  function_env = {
    TTS_OUTPUT_URI        = "gs://${google_storage_bucket.this["output"].name}/${var.output_prefix}"
    TTS_INPUT_PREFIX      = var.input_prefix
    TTS_REQUEST_TIMEOUT_S = tostring(var.http_timeout_s)
    TTS_EVENT_TIMEOUT_S   = tostring(var.event_timeout_s)
    TTS_THREADS           = tostring(var.cpu)
    TTS_LOG_LEVEL         = var.log_level
    TTS_GCP_PROJECT       = var.project_id
  }

  # Native thread pools sized to the instance's vCPUs (the container sees the host's cores).
  thread_env = {
    OMP_NUM_THREADS        = tostring(var.cpu)
    MKL_NUM_THREADS        = tostring(var.cpu)
    OPENBLAS_NUM_THREADS   = tostring(var.cpu)
    NUMEXPR_NUM_THREADS    = tostring(var.cpu)
    VECLIB_MAXIMUM_THREADS = tostring(var.cpu)
  }

  apis = toset([
    "run.googleapis.com",
    "pubsub.googleapis.com",
    "eventarc.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    # signBlob for V4 signed URLs from the metadata-server credentials.
    "iamcredentials.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = local.apis
  project  = var.project_id
  service  = each.value
  # Other workloads in the project may use these APIs too.
  disable_on_destroy = false
}
